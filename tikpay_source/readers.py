"""Reading report files into Arrow record batches: streaming, typed, and never row by row.

CSV is read by DuckDB's reader: one pass sniffs column types over the *whole* file (so a
column is a number only if every row says so, and card numbers with leading zeros stay
text), one checks every row with those types, and the read hands back Arrow record
batches of bounded size. A column already loaded keeps its type, and a file whose values
do not fit it exactly fails instead of being rounded. XML is converted to a temporary CSV file (see
:mod:`tikpay_source.xml_reports`) and read the same way, so both formats get exactly the
same typing rules. Memory stays flat as a report grows.

Local date-times in a report become timezone-aware timestamps in the operator's zone.
A wall-clock time repeated by a daylight-saving change cannot be told apart in the file;
it is read as the earlier of the two instants (the documented assumption). A time the
change skips is read with the offset before it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from tikpay_source.errors import ReportFileError
from tikpay_source.settings import BATCH_ROWS, READER_DUCKDB_CONFIG
from tikpay_source.xml_reports import xml_to_csv

_CSV_OPTIONS = "header = true, delim = ',', quote = '\"', escape = '\"', strict_mode = true"


_Result = TypeVar("_Result")

ColumnTypes = Callable[[str], "str | None"]
"""The dlt data type a column (by its name in the file) already has in the table, if any."""

# A value fits a number type exactly when the cast keeps it: no rounding, no leading zeros dropped.
_NO_LEADING_ZERO = "NOT regexp_matches({c}, '^[+-]?0[0-9]')"
_NUMBER_FITS = {
    "BIGINT": "TRY_CAST({c} AS DOUBLE) = TRY_CAST({c} AS BIGINT) AND " + _NO_LEADING_ZERO,
    "DOUBLE": "TRY_CAST({c} AS DOUBLE) IS NOT NULL AND " + _NO_LEADING_ZERO,
}

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


class ReportFile:
    """A report checked whole and ready to stream: its row count and columns are known up front.

    Opening does all the work that can fail on the file's content (sniffing the types,
    converting every value), so a bad file fails before a single row is handed to dlt.
    Close it when done; it holds a DuckDB connection and, for XML, a converted copy.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection | None,
        typed: _TypedSource | None,
        counts: tuple[int, ...],
        timezone: str,
        batch_rows: int,
        scratch: tempfile.TemporaryDirectory[str] | None = None,
        discard: Path | None = None,
    ) -> None:
        self._con = con
        self._discard = discard
        self._typed = typed
        self._timezone = timezone
        self._batch_rows = batch_rows
        self._scratch = scratch
        self.rows = counts[0] if counts else 0
        columns = typed.columns if typed else ()
        self.non_null: dict[str, int] = dict(zip(columns, counts[1:], strict=True))
        self._reader: pa.RecordBatchReader | None = None
        if con is not None and typed is not None:
            self._reader = _reporting_errors(
                lambda: con.sql(f"SELECT * FROM {typed.source}").to_arrow_reader(batch_rows), typed
            )

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema of the batches, before local timestamps get the operator's zone."""
        return self._reader.schema if self._reader is not None else pa.schema([])

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The rows as Arrow record batches of at most ``batch_rows`` rows, timestamps in the operator's zone."""
        if self._reader is None:
            return
        reader, typed = self._reader, self._typed
        # after the check only the file changing on disk, or the disk itself, can stop the read
        while (batch := _reporting_errors(lambda: next(reader, None), typed)) is not None:
            yield localise_timestamps(batch, self._timezone)

    def copy_csv(self, path: Path, select: str, options: str) -> None:
        """Write ``SELECT {select}`` over the checked rows to a CSV file with DuckDB's COPY.

        For destinations that load files as they are: the rows go from the file to the new
        file inside DuckDB, never through Arrow or Python. ``select`` sees the columns as
        :attr:`schema` types them (timestamps naive, in the operator's local time).
        """
        con, typed = self._con, self._typed
        if con is None or typed is None:
            raise ReportFileError("the report file has no rows to write")
        if self._reader is not None:  # the connection runs one query at a time: the batches give way
            self._reader.close()
        copy = f"COPY (SELECT {select} FROM {typed.source}) TO '{_sql_string(path)}' ({options})"
        _reporting_errors(lambda: con.execute(copy), typed)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
        if self._discard is not None:
            self._discard.unlink(missing_ok=True)
            self._discard = None


def open_report(
    path: Path,
    file_type: str,
    timezone: str,
    batch_rows: int = BATCH_ROWS,
    known_types: ColumnTypes | None = None,
    *,
    discard: bool = False,
) -> ReportFile:
    """Check a downloaded report whole and open it for streaming; raises :class:`ReportFileError`.

    Columns that ``known_types`` names keep that type, so one file cannot turn a loaded
    text column into numbers (or back); a file whose values do not fit fails as a whole.
    With ``discard``, the file is deleted when the report is closed, or at once if it fails.
    """
    scratch = None
    try:
        if file_type == "xml":
            scratch = tempfile.TemporaryDirectory(prefix="tikpay-xml-", dir=path.parent)
            csv_path = Path(scratch.name) / "report.csv"
            if not xml_to_csv(path, csv_path):
                return ReportFile(None, None, (), timezone, batch_rows, scratch, path if discard else None)
            read_path = csv_path
        else:
            _check_complete(path)
            read_path = path
        return _open_csv(read_path, timezone, batch_rows, known_types, scratch, path if discard else None)
    except BaseException:
        if scratch is not None:
            scratch.cleanup()
        if discard:
            path.unlink(missing_ok=True)
        raise


def read_report(
    path: Path,
    file_type: str,
    timezone: str,
    batch_rows: int = BATCH_ROWS,
    known_types: ColumnTypes | None = None,
) -> Iterator[pa.RecordBatch]:
    """Yield the report's rows as Arrow record batches with types read from the file.

    The whole file is checked before the first batch is yielded (see :func:`open_report`).
    """
    report = open_report(path, file_type, timezone, batch_rows, known_types)
    try:
        yield from report.batches()
    finally:
        report.close()


def _check_complete(path: Path) -> None:
    """A CSV export ends with a line break; one that does not was cut short."""
    size = path.stat().st_size
    if size == 0:
        raise ReportFileError("the report file is empty (not even a header row)")
    with path.open("rb") as handle:
        handle.seek(size - 1)
        if handle.read(1) not in (b"\n", b"\r"):
            raise ReportFileError("the report file does not end with a line break: it looks truncated")


def _open_csv(
    path: Path,
    timezone: str,
    batch_rows: int,
    known_types: ColumnTypes | None,
    scratch: tempfile.TemporaryDirectory[str] | None,
    discard: Path | None,
) -> ReportFile:
    """Type the columns from the whole file and check every row; the read that follows streams.

    Sniffing is the expensive part, so it runs once; the check and the read that follow
    use the sniffed columns with auto-detection off, which also means the read cannot
    come to a different conclusion than the check did.
    """
    con = duckdb.connect(config=READER_DUCKDB_CONFIG)
    try:
        typed = _typed_source(path, _reporting_errors(lambda: _sniff(con, path), None), known_types)
        counts = _reporting_errors(lambda: _check(con, typed), typed)
        return ReportFile(con, typed, counts, timezone, batch_rows, scratch, discard)
    except BaseException:
        con.close()
        raise


@dataclass(frozen=True)
class _TypedSource:
    """A ``read_csv`` call with every column's type spelt out, and the types kept from earlier loads."""

    path: Path
    columns: tuple[str, ...]
    source: str
    kept: tuple[str, ...] = ()
    exact_checks: tuple[tuple[str, str], ...] = ()
    """Columns kept as numbers that the file's values might not fit exactly, and that type."""


_Sniffed = tuple[list[dict[str, str]], str | None, str | None]


def _sniff(con: duckdb.DuckDBPyConnection, path: Path) -> _Sniffed:
    """Columns with types, and the date and timestamp formats, that DuckDB's sniffer finds in every row."""
    return con.execute(
        f"SELECT Columns, DateFormat, TimestampFormat FROM sniff_csv('{_sql_string(path)}', {_CSV_OPTIONS}, sample_size = -1)"
    ).fetchall()[0]


def _typed_source(path: Path, sniffed: _Sniffed, known_types: ColumnTypes | None) -> _TypedSource:
    """The ``read_csv`` call for what a sniff found, with columns already loaded keeping their type."""
    columns, date_format, timestamp_format = sniffed
    kept: list[str] = []
    exact: list[tuple[str, str]] = []
    spec: list[str] = []
    for column in columns:
        read_as = column["type"]
        loaded_as = _DUCKDB_TYPES.get(known_types(column["name"]) or "") if known_types else None
        if loaded_as and loaded_as != read_as:
            kept.append(f"{column['name']} {loaded_as.lower()}")
            if loaded_as in _NUMBER_FITS and (loaded_as, read_as) != ("DOUBLE", "BIGINT"):
                exact.append((column["name"], loaded_as))
            read_as = loaded_as
        spec.append(f"'{_sql_string(column['name'])}': '{read_as}'")
    return _TypedSource(
        path,
        tuple(column["name"] for column in columns),
        _read_csv_call(path, spec, date_format, timestamp_format),
        tuple(kept),
        tuple(exact),
    )


def _read_csv_call(path: Path, spec: list[str], date_format: str | None, timestamp_format: str | None) -> str:
    options = [_CSV_OPTIONS, "auto_detect = false", f"columns = {{{', '.join(spec)}}}"]
    if date_format:
        options.append(f"dateformat = '{_sql_string(date_format)}'")
    if timestamp_format:
        options.append(f"timestampformat = '{_sql_string(timestamp_format)}'")
    return f"read_csv('{_sql_string(path)}', {', '.join(options)})"


def _check(con: duckdb.DuckDBPyConnection, typed: _TypedSource) -> tuple[int, ...]:
    """Convert every value of every row with these types; return the row count and each column's values.

    A value that does not fit raises.

    ``count(*)`` alone would only split the file into rows; counting each column makes
    DuckDB convert every value. A cast to a number can succeed and still change the
    value ("1.5" read as a bigint is 2, "0042" is 42), so columns kept as numbers against
    the sniff's verdict are first compared with their text, which also names the value.
    """
    if typed.exact_checks:
        _check_exact_fit(con, typed)
    counts = ", ".join(["count(*)", *(f"count({_ident(name)})" for name in typed.columns)])
    return tuple(con.execute(f"SELECT {counts} FROM {typed.source}").fetchall()[0])


def _check_exact_fit(con: duckdb.DuckDBPyConnection, typed: _TypedSource) -> None:
    as_text = _read_csv_call(
        typed.path, [f"'{_sql_string(name)}': 'VARCHAR'" for name in typed.columns], None, None
    )
    firsts = ", ".join(
        f"first({_ident(name)}) FILTER (WHERE {_ident(name)} IS NOT NULL"
        f" AND NOT coalesce({_NUMBER_FITS[loaded_as].format(c=_ident(name))}, false))"
        for name, loaded_as in typed.exact_checks
    )
    (misfits,) = con.execute(f"SELECT {firsts} FROM {as_text}").fetchall()
    for (name, loaded_as), value in zip(typed.exact_checks, misfits, strict=True):
        if value is not None:
            raise ReportFileError(
                f"the report file does not fit the types its columns were first loaded with: "
                f"{name} is {loaded_as.lower()} but the file has {str(value)[:40]!r}"
            )


def _reporting_errors(step: Callable[[], _Result], typed: _TypedSource | None) -> _Result:
    """Run a step of reading the file; DuckDB's error becomes one line saying what is wrong.

    An Arrow stream hands DuckDB's errors on as ``OSError``, as it does a failing disk.
    """
    try:
        return step()
    except (duckdb.Error, OSError) as exc:
        raise _file_error(exc, typed) from None


def _file_error(exc: Exception, typed: _TypedSource | None) -> ReportFileError:
    if isinstance(exc, duckdb.OutOfMemoryException):  # not the file's fault: say so
        return ReportFileError(f"reading the report file ran out of memory: {_first_line(exc)}")
    problem = "is malformed"
    if typed and typed.kept:
        problem += f" or does not fit the types its columns were first loaded with ({', '.join(typed.kept)})"
    return ReportFileError(f"the report file {problem}: {_first_line(exc)}")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_string(text: object) -> str:
    return str(text).replace("'", "''")


def _first_line(exc: Exception) -> str:
    """DuckDB's reason, without the row it quotes: a whole row of customer data has no place in a log."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Original Line")]
    return " ".join(lines[:2])[:300] if lines else type(exc).__name__


def localise_timestamps(batch: pa.RecordBatch, timezone: str) -> pa.RecordBatch:
    """Give naive local timestamps the operator's zone.

    A time repeated by the change to winter time is read as the earlier instant; a time
    the change to summer time skips (only a clock not yet put forward can write one) is
    read with the offset in force before the change, as Python's ``zoneinfo`` does.
    """
    columns = []
    changed = False
    for column in batch.columns:
        if pa.types.is_timestamp(column.type) and column.type.tz is None:
            column = _localise(column, timezone)
            changed = True
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names) if changed else batch


def _localise(column: pa.Array, timezone: str) -> pa.Array:
    try:
        return pc.assume_timezone(column, timezone=timezone, ambiguous="earliest", nonexistent="raise")
    except pa.ArrowInvalid:  # rare: worth a second pass only when a skipped time is there
        aware = pc.assume_timezone(column, timezone=timezone, ambiguous="earliest", nonexistent="earliest")
        # "earliest" puts a skipped time on the last instant before the change, whose wall
        # time shows the old offset: move it on by the distance to the wall time wanted
        return pc.add(aware, pc.subtract(column, pc.local_timestamp(aware)))
