"""Rendering report rows into the CSV and XML files a job serves.

Files are written row by row to disk so a report of millions of rows never sits in
memory. The same writers produce the deliberately damaged variants used by the
download faults, so a damaged file differs from the good one in exactly one place.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO, TextIO
from xml.sax.saxutils import escape, quoteattr

from tikpay_source.sandbox.data import Row

CONTENT_TYPES: dict[str, str] = {"csv": "text/csv; charset=utf-8", "xml": "application/xml"}


def write_report(
    path: Path,
    file_type: str,
    report_type: str,
    columns: Sequence[str],
    rows: Iterable[Row],
    malformed_at: int | None = None,
) -> int:
    """Write ``rows`` to ``path`` as ``file_type``; return the number of rows written.

    ``malformed_at`` damages the row with that index (a CSV row with one field too many,
    an XML record with a mismatched closing tag) for the ``malformed_row`` fault.
    """
    with path.open("w", encoding="utf-8", newline="") as fh:
        if file_type == "csv":
            return _write_csv(fh, columns, rows, malformed_at)
        return _write_xml(fh, report_type, columns, rows, malformed_at)


def _write_csv(fh: TextIO, columns: Sequence[str], rows: Iterable[Row], malformed_at: int | None) -> int:
    """RFC 4180: header row, CRLF line ends, fields quoted only when they need it."""
    writer = csv.writer(fh, lineterminator="\r\n")
    writer.writerow(columns)
    count = 0
    for count, row in enumerate(rows, start=1):
        writer.writerow(row if count - 1 != malformed_at else (*row, "unexpected extra field"))
    return count


def _write_xml(
    fh: TextIO, report_type: str, columns: Sequence[str], rows: Iterable[Row], malformed_at: int | None
) -> int:
    """One ``<record>`` per row: the first column is an attribute, the rest child elements.

    Empty values are written as empty elements (``<fare_amount/>``), never omitted, so
    every record carries every field.
    """
    id_col, fields = columns[0], columns[1:]
    tags = [(f"<{name}>", f"</{name}>", f"<{name}/>") for name in fields]  # built once, not per row
    fh.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<report type={quoteattr(report_type)}>\n')
    count = 0
    for count, row in enumerate(rows, start=1):
        parts = [f"<record {id_col}={quoteattr(row[0])}>"]
        parts += [
            f"{op}{escape(value)}{cl}" if value else empty
            for (op, cl, empty), value in zip(tags, row[1:], strict=True)
        ]
        # the malformed row closes with a tag that does not match its opening tag
        parts.append("</record>\n" if count - 1 != malformed_at else "</record_broken>\n")
        fh.write("".join(parts))
    fh.write("</report>\n")
    return count


def write_truncated_copy(source: Path, target: Path, fraction: float = 0.6) -> None:
    """Copy the first ``fraction`` of ``source``, cut inside a row, for the ``truncate`` fault.

    The cut lands one byte into the first field of the line at ``fraction``, so the last
    row visibly lacks fields (a CSV file may legally end without a line break, so a cut at
    a line end, or inside a row's last field, would be a different, well-formed file), and
    before a byte that continues a UTF-8 character, so the damage is in the structure, not
    the encoding.
    """
    size = source.stat().st_size
    with source.open("rb") as src:
        head = src.read(max(1, int(size * fraction)))
        line_start = max(head.rfind(b"\n", 0, len(head) - 1) + 1, 1)
        cut = line_start + 1
        src.seek(cut)
        while _is_continuation(src.read(1)) and cut > 1:
            cut -= 1
            src.seek(cut)
        src.seek(0)
        with target.open("wb") as dst:
            _copy_prefix(src, dst, cut)


def _is_continuation(byte: bytes) -> bool:
    return bool(byte) and 0x80 <= byte[0] <= 0xBF


def _copy_prefix(src: BinaryIO, dst: BinaryIO, length: int) -> None:
    remaining = length
    while remaining > 0:
        chunk = src.read(min(remaining, 1 << 16))
        if not chunk:
            break
        dst.write(chunk)
        remaining -= len(chunk)
