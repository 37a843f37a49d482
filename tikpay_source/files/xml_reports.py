"""Turning an XML report into CSV, a few megabytes at a time, so it is read like a CSV report.

The layout the API writes (one root, repeated records whose attributes and child elements
are the fields) goes through a strict block scanner that expands nothing and refuses
DTDs, comments, CDATA and character references. Anything else, and anything the scanner
refuses, goes through defusedxml's incremental parser with DTDs and entities refused,
which also decides what counts as malformed. A large file is cut at record ends into one
part per core (up to four), scanned side by side in worker processes that import only
the scanner, and the parts' CSV joined in order.
"""

from __future__ import annotations

import csv
from pathlib import Path
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from tikpay_source.errors import ReportFileError
from tikpay_source.files.xml_scan import scan_canonical_xml


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def xml_to_csv(xml_path: Path, csv_path: Path) -> int:
    """Flatten ``<root><record>…</record>…</root>`` into a CSV file and return the row count.

    Each record's attributes and child elements are its fields; a record whose field is
    repeated or has elements inside it is refused, as one row could not hold it without
    losing a value. A file in the layout the API writes (every record with the same fields
    in the same order, see :mod:`tikpay_source.files.xml_scan`) is converted by the fast scanner;
    any other file, and any the scanner has doubts about, goes through the full parser.
    """
    rows = scan_canonical_xml(xml_path, csv_path)
    return rows if rows is not None else parse_xml_to_csv(xml_path, csv_path)


# --- the full path: any well-formed XML, incrementally, with DTDs and entities refused ----


def parse_xml_to_csv(xml_path: Path, csv_path: Path) -> int:
    """The full parser's conversion: the header is the union of field names in file order.

    A field first seen late in the file triggers one more pass with the full header, so
    no value is ever dropped.
    """
    fields: dict[str, None] = {}
    while True:
        try:
            return _write_xml_rows(xml_path, csv_path, fields)
        except _NewField as new:
            fields.update(dict.fromkeys(new.names))


def _flat_record(element: Element, number: int) -> dict[str, str]:
    """A record's attributes and child elements as one row; a shape that would lose a value is refused.

    An attribute of a field (``<fare_amount currency="AUD">``) is a column of its own,
    ``fare_amount_currency``; text directly inside the record, between its fields, has no
    column to go to, so the file is refused naming the record's element.
    """
    record = dict(element.attrib)
    problem = ""
    if (element.text or "").strip() or any((child.tail or "").strip() for child in element):
        problem = f"its element <{_local_name(element.tag)}> holds text outside its fields"
    for child in element:
        name = _local_name(child.tag)
        values = {name: child.text or "", **{f"{name}_{_local_name(a)}": v for a, v in child.attrib.items()}}
        if len(child):
            problem = problem or f"its field {name!r} has elements inside it"
        elif any(key in record for key in values):
            problem = problem or f"its field {name!r} appears more than once"
        record.update(values)
    if problem:
        raise ReportFileError(f"the XML report's record {number} cannot be read as one row: {problem}")
    return record


class _NewField(Exception):
    def __init__(self, names: list[str]) -> None:
        self.names = names


def _write_xml_rows(xml_path: Path, csv_path: Path, fields: dict[str, None]) -> int:
    header_fixed = bool(fields)
    rows = 0
    with csv_path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        depth = 0
        root = None
        try:
            for event, element in iterparse(str(xml_path), events=("start", "end"), forbid_dtd=True):
                if event == "start":
                    depth += 1
                    root = element if root is None else root
                    continue
                depth -= 1
                if depth != 1:
                    continue
                record = _flat_record(element, rows + 1)
                root.clear()  # drop the finished record from the tree: memory stays flat
                unknown = [name for name in record if name not in fields]
                if unknown:
                    if header_fixed or rows:
                        raise _NewField(unknown)
                    fields.update(dict.fromkeys(unknown))
                if rows == 0:
                    writer.writerow(list(fields))
                writer.writerow([record.get(name, "") for name in fields])
                rows += 1
        except DefusedXmlException as exc:
            raise ReportFileError(
                f"the XML report was refused: {type(exc).__name__} (DTDs and entities are not allowed)"
            ) from None
        except SyntaxError as exc:  # xml.etree.ElementTree.ParseError
            raise ReportFileError(f"the XML report is malformed: {exc}") from None
    return rows
