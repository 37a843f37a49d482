"""Reading report files into Arrow record batches: streaming, typed, and never row by row.

CSV is read by DuckDB's reader: one pass sniffs column types over the *whole* file (so a
column is a number only if every row says so, and card numbers with leading zeros stay
text), one checks every row with those types, and the read hands back Arrow record
batches of bounded size. XML is converted block by block to a temporary CSV file and read
the same way, so both formats get exactly the same typing rules: the layout the API
writes goes through a strict scanner that expands nothing, anything else through the
incremental parser with DTDs and entities refused. Memory stays flat as a report grows.

Local date-times in a report become timezone-aware timestamps in the operator's zone.
A wall-clock time repeated by a daylight-saving change cannot be told apart in the file;
it is read as the earlier of the two instants (the documented assumption).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from tikpay_source.errors import ReportFileError
from tikpay_source.settings import BATCH_ROWS
from tikpay_source.xml_reports import xml_to_csv

# DuckDB streams the file, so a larger buffer buys no speed, only memory: 128 MB keeps the
# whole-file type sniffing and the read at the same ceiling for 1 and 5 million rows.
_DUCKDB_CONFIG = {"threads": 2, "memory_limit": "128MB"}
_CSV_OPTIONS = "header = true, delim = ',', quote = '\"', escape = '\"', strict_mode = true, sample_size = -1"


ColumnTypes = Callable[[str], "str | None"]
"""The dlt data type a column (by its name in the file) already has in the table, if any."""

# dlt data types as DuckDB reads them: a column keeps the type of its first load
_DUCKDB_TYPES = {
    "text": "VARCHAR",
    "bigint": "BIGINT",
    "double": "DOUBLE",
    "decimal": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "time": "TIME",
}


def read_report(
    path: Path,
    file_type: str,
    timezone: str,
    batch_rows: int = BATCH_ROWS,
    known_types: ColumnTypes | None = None,
) -> Iterator[pa.RecordBatch]:
    """Yield the report's rows as Arrow record batches with types read from the file.

    Columns that ``known_types`` names keep that type, so one file cannot turn a loaded
    text column into numbers (or back); a file whose values do not fit fails as a whole.
    The whole file is checked before the first batch is yielded, so a malformed file
    fails without handing dlt a part of its rows.
    """
    if file_type == "xml":
        with tempfile.TemporaryDirectory(prefix="tikpay-xml-", dir=path.parent) as scratch:
            csv_path = Path(scratch) / "report.csv"
            if xml_to_csv(path, csv_path):
                yield from _read_csv(csv_path, timezone, batch_rows, known_types)
    else:
        _check_complete(path)
        yield from _read_csv(path, timezone, batch_rows, known_types)


def _check_complete(path: Path) -> None:
    """A CSV export ends with a line break; one that does not was cut short."""
    size = path.stat().st_size
    if size == 0:
        raise ReportFileError("the report file is empty (not even a header row)")
    with path.open("rb") as handle:
        handle.seek(size - 1)
        if handle.read(1) not in (b"\n", b"\r"):
            raise ReportFileError("the report file does not end with a line break: it looks truncated")


def _read_csv(
    path: Path, timezone: str, batch_rows: int, known_types: ColumnTypes | None
) -> Iterator[pa.RecordBatch]:
    """Sniff the types once over the whole file, check every row, then stream typed batches.

    Sniffing is the expensive part, so it runs once; the check and the read that follow
    use the sniffed columns with auto-detection off, which also means the read cannot
    come to a different conclusion than the check did.
    """
    kept: list[str] = []
    with duckdb.connect(config=_DUCKDB_CONFIG) as con:
        try:
            source, kept = _typed_source(con, path, known_types)
            con.execute(f"SELECT count(*) FROM {source}").fetchall()
            reader = con.sql(f"SELECT * FROM {source}").to_arrow_reader(batch_rows)
        except duckdb.Error as exc:
            problem = "is malformed"
            if kept:
                problem += (
                    f" or does not fit the types its columns were first loaded with ({', '.join(kept)})"
                )
            raise ReportFileError(f"the report file {problem}: {_first_line(exc)}") from None
        for batch in reader:
            yield localise_timestamps(batch, timezone)


def _typed_source(
    con: duckdb.DuckDBPyConnection, path: Path, known_types: ColumnTypes | None
) -> tuple[str, list[str]]:
    """A ``read_csv`` call with the file's columns and types spelt out, from one whole-file sniff.

    Also returns the columns whose sniffed type was overridden by the type they were first
    loaded with.
    """
    name = _sql_string(path)
    sniffed = con.execute(
        f"SELECT Columns, DateFormat, TimestampFormat FROM sniff_csv('{name}', {_CSV_OPTIONS})"
    ).fetchone()
    columns, date_format, timestamp_format = sniffed
    kept = []
    for column in columns:
        loaded_as = _DUCKDB_TYPES.get(known_types(column["name"]) or "") if known_types else None
        if loaded_as and loaded_as != column["type"]:
            kept.append(f"{column['name']} {loaded_as.lower()}")
            column["type"] = loaded_as
    spec = ", ".join(f"'{_sql_string(c['name'])}': '{c['type']}'" for c in columns)
    options = [_CSV_OPTIONS, "auto_detect = false", f"columns = {{{spec}}}"]
    if date_format:
        options.append(f"dateformat = '{_sql_string(date_format)}'")
    if timestamp_format:
        options.append(f"timestampformat = '{_sql_string(timestamp_format)}'")
    return f"read_csv('{name}', {', '.join(options)})", kept


def _sql_string(text: object) -> str:
    return str(text).replace("'", "''")


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
