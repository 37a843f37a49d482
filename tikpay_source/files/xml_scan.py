"""The fast path of XML reports: a strict block scanner for the one layout the API writes.

The full parser (:mod:`tikpay_source.files.xml_reports`) costs ~30 s per million TRIPS
records, almost all of it in building one Python object per element. The API writes one
fixed layout, so this scanner reads that layout with compiled regular expressions, a few
megabytes at a time, and accepts nothing else: no DTD, comment, CDATA section, processing
instruction or character reference, no entity but the five predefined ones, no field the
first record did not have, no field out of order. Whatever it does not accept (or the
file's end not being the root's end tag) sends the whole file to the full parser instead,
so the scanner can only ever agree with it: it needs no DTD handling, and it expands
nothing. A large file is cut at record ends into one part per core (up to four), scanned
side by side, and the parts' CSV joined in order.

The other parts are scanned by this file run as a script (``python xml_scan.py <job>``), in
processes of their own that import nothing of the connector or dlt: a worker started in
no time, and never a fork of a process whose other threads (DuckDB's, dlt's, a sandbox's)
might hold a lock the child would wait on forever.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as defused_fromstring

_SCAN_BLOCK_BYTES = 4 * 1024 * 1024
_MAX_PENDING_BYTES = 64 * 1024 * 1024
_MAX_HEAD_BYTES = 1024 * 1024
_PARTS = min(os.cpu_count() or 1, 4)  # a large file is converted in this many parts side by side
_MIN_PART_BYTES = 32 * 1024 * 1024
_WS = rb"[ \t\n]*"
_NAME = rb"[A-Za-z_][A-Za-z0-9_.-]*"
# the five predefined entities, as CSV text (a quote is doubled), replaced in one pass from the left
_PREDEFINED = {b"lt": b"<", b"gt": b">", b"quot": b'""', b"apos": b"'", b"amp": b"&"}
_ENTITY = re.compile(rb"&(lt|gt|quot|apos|amp);")


def _escaped(plain: bytes) -> bytes:
    """A run of characters where ``&`` may only start one of the five predefined entities."""
    return plain + rb"*+(?:&(?:lt|gt|amp|quot|apos);" + plain + rb"*+)*+"


_TEXT = _escaped(rb"[^<&\x00-\x08\x0b\x0c\x0e-\x1f]")
_ATTR_VALUE = _escaped(rb'[^"<&\x00-\x1f]')  # no tab or newline: those would be normalised to spaces
_NON_CHARACTER_FFFE = "\ufffe".encode()  # XML 1.0 allows neither in a document
_NON_CHARACTER_FFFF = "\uffff".encode()
_PROLOG = re.compile(
    rb'(?:\xef\xbb\xbf)?(?:<\?xml version="1\.0"(?: encoding="(?i:utf-8)")?(?: standalone="(?:yes|no)")?\?>)?'
    + _WS
    + rb"<(?P<root>"
    + _NAME
    + rb")(?:[ \t\n]+"
    + _NAME
    + rb'="[^"<&\x00-\x1f]*")*'
    + _WS
    + rb">"
    + _WS
    + rb"(?P<first><(?P<record>"
    + _NAME
    + rb"))(?=[ \t\n/>])"
)


class _Layout:
    """The record layout learnt from the first record, as one compiled pattern per record."""

    def __init__(self, record: bytes, attributes: list[str], children: list[str]) -> None:
        self.record = record
        self.attributes, self.children = attributes, children
        self.fields = [*attributes, *children]
        parts = [_WS + rb"<" + record]
        for name in attributes:
            parts.append(
                rb"[ \t\n]+" + re.escape(name.encode()) + rb'[ \t\n]*=[ \t\n]*""(' + _ATTR_VALUE + rb')""'
            )
        parts.append(_WS + rb">" + _WS)
        for name in children:
            tag = re.escape(name.encode())  # a "." in a name is a dot, not any character
            parts.append(rb"<" + tag + rb"(?:>(" + _TEXT + rb")</" + tag + rb"[ \t\n]*|[ \t\n]*/)>" + _WS)
        parts.append(rb"</" + record + rb"[ \t\n]*>")
        self.pattern = re.compile(b"".join(parts))

    @classmethod
    def learn(cls, head: bytes, prolog: re.Match[bytes]) -> _Layout | None:
        """The layout of the first record (read with the safe parser), or None if it is unusual."""
        end_tag = _first_end_tag(head, prolog)
        if end_tag is None:
            return None
        try:
            element = defused_fromstring(head[prolog.start("first") : end_tag.end()], forbid_dtd=True)
        except (DefusedXmlException, SyntaxError):
            return None
        names = [*element.attrib, *(child.tag for child in element)]
        if (
            any(len(child) or child.attrib or (child.tail or "").strip() for child in element)
            or (element.text or "").strip()
            or len(set(names)) != len(names)
            or not all(re.fullmatch(_NAME.decode(), name) for name in names)
        ):
            return None
        return cls(prolog["record"], list(element.attrib), [child.tag for child in element])


def scan_canonical_xml(xml_path: Path, csv_path: Path) -> int | None:
    """Convert a file in the API's layout to CSV and return its row count; None if it is not one.

    A large file is cut at record ends into parts converted side by side, one per core
    (the scanner is bound by one core per process); the parts are then joined in order.
    """
    with xml_path.open("rb") as source:
        head = _read_head(source)
        head_end = source.tell()
    prolog = _PROLOG.match(head)
    layout = _Layout.learn(head, prolog) if prolog else None
    if layout is None or prolog is None:
        return None
    cuts = _part_cuts(xml_path, layout.record, head_end)
    parts = [
        _Part(
            start,
            end,
            csv_path.with_name(f"{csv_path.name}.{i}"),
            prolog["root"] if i == len(cuts) - 2 else None,
        )
        for i, (start, end) in enumerate(itertools.pairwise(cuts))
    ]
    try:
        counts = _convert_parts(xml_path, (head[prolog.start("first") :], head_end), layout, parts)
        if any(count is None for count in counts) or not sum(counts):  # type: ignore[arg-type]
            return None
        with csv_path.open("wb") as out:
            out.write(_csv_header(layout.fields))
            for part in parts:
                with part.path.open("rb") as converted:
                    shutil.copyfileobj(converted, out, _SCAN_BLOCK_BYTES)
        return sum(counts)  # type: ignore[arg-type]
    finally:
        for part in parts:
            part.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Part:
    """A byte range of the XML file, from a record's start to a record's end, and where its CSV goes."""

    start: int
    end: int
    path: Path
    root: bytes | None  # the root's name if this is the last part: it must end with the root's end tag


def _part_cuts(xml_path: Path, record: bytes, head_end: int) -> list[int]:
    """Offsets that cut the file into parts ending at a record's end tag, one part per core."""
    size = xml_path.stat().st_size
    wanted = min(_PARTS, size // _MIN_PART_BYTES)
    cuts = [0]
    with xml_path.open("rb") as source:
        for i in range(1, wanted):
            source.seek(max(size * i // wanted, head_end, cuts[-1]))
            window = source.read(_MAX_HEAD_BYTES)
            end_tag = _end_tag(record).search(window)
            if end_tag is not None:
                cuts.append(source.tell() - len(window) + end_tag.end())
    return [*cuts, size]


def _convert_parts(
    xml_path: Path, head: tuple[bytes, int], layout: _Layout, parts: list[_Part]
) -> list[int | None]:
    """Convert every part, the first here and the others in worker processes at the same time.

    ``head`` is what was already read of the first part (from its first record on) and
    the offset where reading goes on.
    """
    first, rest = parts[0], parts[1:]
    workers = [_start_worker(xml_path, layout, part) for part in rest]
    try:
        here = _convert_part(xml_path, layout, first, head)
        return [here, *(_worker_result(worker) for worker in workers)]
    finally:
        for worker in workers:
            if worker.poll() is None:  # interrupted, or the first part failed: stop the others
                worker.kill()
                worker.wait()


def _start_worker(xml_path: Path, layout: _Layout, part: _Part) -> subprocess.Popen[bytes]:
    """This file as a script, converting ``part``; the job is its argument, one JSON object."""
    job = {
        "xml": str(xml_path),
        "layout": [layout.record.decode(), layout.attributes, layout.children],
        "part": asdict(part) | {"path": str(part.path), "root": part.root and part.root.decode()},
        "block_bytes": _SCAN_BLOCK_BYTES,
    }
    return subprocess.Popen(
        [sys.executable, __file__, json.dumps(job)],
        env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)},  # finds defusedxml where this process did
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _worker_result(worker: subprocess.Popen[bytes]) -> int | None:
    """A worker's row count (None: its part is unusual); a worker that broke is an error, not a bad file."""
    out, err = worker.communicate()
    if worker.returncode != 0:
        last = (err.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"an XML conversion worker exited with code {worker.returncode}: {last}")
    result: int | None = json.loads(out)
    return result


def _work(job: dict[str, Any]) -> int | None:
    """The worker's side of :func:`_start_worker`."""
    record, attributes, children = job["layout"]
    part = job["part"]
    root = part["root"] and part["root"].encode()
    layout = _Layout(record.encode(), attributes, children)
    converting = _Part(part["start"], part["end"], Path(part["path"]), root)
    return _convert_part(Path(job["xml"]), layout, converting, block_bytes=job["block_bytes"])


def _convert_part(
    xml_path: Path,
    layout: _Layout,
    part: _Part,
    head: tuple[bytes, int] | None = None,
    block_bytes: int | None = None,
) -> int | None:
    """Convert one part's records to CSV lines in its own file; None if anything in it is unusual.

    ``head`` is what was already read of the part and the offset where reading goes on
    (the first part's); any other part is read from its start. ``block_bytes`` is the size
    of a read (the parent's, in a worker).
    """
    pending, offset = head or (b"", part.start)
    rows = 0
    with xml_path.open("rb") as source, part.path.open("wb") as out:
        source.seek(offset)
        while block := _read_block(source, part.end - source.tell(), block_bytes):
            pending += block
            cut = pending.rfind(b"</" + layout.record)
            cut = pending.find(b">", cut) + 1 if cut >= 0 else 0
            if not cut and len(pending) > _MAX_PENDING_BYTES:
                return None  # no record end in sight: not the API's layout
            converted = _records_to_csv(pending[:cut], layout)
            if converted is None:
                return None
            out.write(converted[0])
            rows += converted[1]
            pending = pending[cut:]
        root_end = re.compile((_end_tag(part.root).pattern if part.root else b"") + _WS + rb"\Z")
        end = root_end.search(pending)  # what is left must be whole records (and the root's end tag)
        converted = _records_to_csv(pending[: end.start()], layout) if end else None
        if converted is None:
            return None
        out.write(converted[0])
        return rows + converted[1]


def _read_head(source: BinaryIO) -> bytes:
    """Blocks up to the end of the first record (or 1 MB, or the file's end): what the layout is learnt from."""
    head = b""
    while len(head) < _MAX_HEAD_BYTES and (block := _read_block(source)):
        head += block
        prolog = _PROLOG.match(head)
        if prolog and _first_end_tag(head, prolog):
            break
    return head


def _first_end_tag(head: bytes, prolog: re.Match[bytes]) -> re.Match[bytes] | None:
    return _end_tag(prolog["record"]).search(head, prolog.end())


def _end_tag(name: bytes) -> re.Pattern[bytes]:
    """An element's end tag; a CR before its ``>`` is allowed, as in the raw bytes of a CRLF file."""
    return re.compile(rb"</" + re.escape(name) + rb"[ \t\r\n]*>")


def _read_block(source: BinaryIO, limit: int | None = None, block_bytes: int | None = None) -> bytes:
    """The next block (at most ``limit`` bytes) with XML's line-end handling: CRLF and lone CR are read as LF.

    A block never ends between the CR and LF of one line end, or the pair would count twice.
    """
    size = block_bytes or _SCAN_BLOCK_BYTES
    if limit is not None:
        if limit <= 0:
            return b""
        size = min(size, limit)
    data = source.read(size)
    if data.endswith(b"\r"):
        data += source.read(1)
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n") if b"\r" in data else data


def _records_to_csv(chunk: bytes, layout: _Layout) -> tuple[bytes, int] | None:
    """Whole records as CSV lines (every field quoted; empty means null); None if one is unusual."""
    if _holds_what_xml_text_cannot(chunk):
        return None  # let the full parser say so
    chunk = chunk.replace(b'"', b'""')  # CSV quoting; the pattern expects attribute quotes doubled
    end = len(chunk.rstrip(b" \t\n"))
    match = layout.pattern.match
    lines: list[bytes] = []
    position = 0
    while position < end:
        found = match(chunk, position)
        if found is None:
            return None
        lines.append(b'","'.join(found.groups(b"")))
        position = found.end()
    if not lines:
        return b"", 0
    text = b'"' + b'"\n"'.join(lines) + b'"\n'
    if b"&" in text:  # one pass from the left, so "&amp;lt;" becomes "&lt;", as a parser reads it
        text = _ENTITY.sub(lambda entity: _PREDEFINED[entity[1]], text)
    return text, len(lines)


def _holds_what_xml_text_cannot(chunk: bytes) -> bool:
    """``]]>`` or U+FFFE, U+FFFF, which no XML text may hold; sought only where their first byte is
    (a search for one byte runs at memory speed, one for three at a tenth of it: 0.17 s per 64 MB)."""
    if b"]" in chunk and b"]]>" in chunk:
        return True
    return b"\xef" in chunk and (_NON_CHARACTER_FFFE in chunk or _NON_CHARACTER_FFFF in chunk)


def _csv_header(fields: list[str]) -> bytes:
    line = io.StringIO()
    csv.writer(line, lineterminator="\n").writerow(fields)
    return line.getvalue().encode()


if __name__ == "__main__":  # a worker of _convert_parts
    print(json.dumps(_work(json.loads(sys.argv[1]))))
