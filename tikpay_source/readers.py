"""Reading report files into Arrow record batches: streaming, typed, and never row by row.

CSV is read by DuckDB's reader, which sniffs column types over the *whole* file (so a
column is a number only if every row says so, and card numbers with leading zeros stay
text) and hands back Arrow record batches of bounded size. XML is parsed incrementally
with DTDs and entities refused, written to a temporary CSV file, and read the same way,
so both formats get exactly the same typing rules.

Local date-times in a report become timezone-aware timestamps in the operator's zone.
A wall-clock time repeated by a daylight-saving change cannot be told apart in the file;
it is read as the earlier of the two instants (the documented assumption).
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from tikpay_source.errors import ReportFileError
from tikpay_source.settings import BATCH_ROWS

_CSV_OPTIONS = "header = true, delim = ',', quote = '\"', escape = '\"', strict_mode = true, sample_size = -1"


def read_report(
    path: Path, file_type: str, timezone: str, batch_rows: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Yield the report's rows as Arrow record batches with types read from the file.

    The whole file is checked before the first batch is yielded, so a malformed file
    fails without handing dlt a part of its rows.
    """
    if file_type == "xml":
        with tempfile.TemporaryDirectory(prefix="tikpay-xml-", dir=path.parent) as scratch:
            csv_path = Path(scratch) / "report.csv"
            if xml_to_csv(path, csv_path):
                yield from _read_csv(csv_path, timezone, batch_rows)
    else:
        _check_complete(path)
        yield from _read_csv(path, timezone, batch_rows)


def _check_complete(path: Path) -> None:
    """A CSV export ends with a line break; one that does not was cut short."""
    size = path.stat().st_size
    if size == 0:
        raise ReportFileError("the report file is empty (not even a header row)")
    with path.open("rb") as handle:
        handle.seek(size - 1)
        if handle.read(1) not in (b"\n", b"\r"):
            raise ReportFileError("the report file does not end with a line break: it looks truncated")


def _read_csv(path: Path, timezone: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    source = f"read_csv('{_sql_string(path)}', {_CSV_OPTIONS})"
    with duckdb.connect(config={"threads": 2, "memory_limit": "256MB"}) as con:
        try:
            con.execute(f"SELECT count(*) FROM {source}").fetchall()
            reader = con.sql(f"SELECT * FROM {source}").to_arrow_reader(batch_rows)
        except duckdb.Error as exc:
            raise ReportFileError(f"the report file is malformed: {_first_line(exc)}") from None
        for batch in reader:
            yield localise_timestamps(batch, timezone)


def _sql_string(path: Path) -> str:
    return str(path).replace("'", "''")


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2])[:300] if lines else type(exc).__name__


def localise_timestamps(batch: pa.RecordBatch, timezone: str) -> pa.RecordBatch:
    """Give naive local timestamps the operator's zone (earliest instant when ambiguous)."""
    columns = []
    changed = False
    for column in batch.columns:
        if pa.types.is_timestamp(column.type) and column.type.tz is None:
            column = pc.assume_timezone(
                column, timezone=timezone, ambiguous="earliest", nonexistent="earliest"
            )
            changed = True
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names) if changed else batch


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def xml_to_csv(xml_path: Path, csv_path: Path) -> int:
    """Flatten ``<root><record>…</record>…</root>`` into a CSV file and return the row count.

    Each record's attributes and child elements are its fields. The header is the union
    of field names in file order; a field first seen late in the file triggers one more
    pass with the full header, so no value is ever dropped.
    """
    fields: dict[str, None] = {}
    while True:
        try:
            return _write_xml_rows(xml_path, csv_path, fields)
        except _NewField as new:
            fields.update(dict.fromkeys(new.names))


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
                record = dict(element.attrib)
                record.update({_local_name(child.tag): (child.text or "") for child in element})
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
