"""Checking report files whole and reading them: streaming, typed, and never row by row.

CSV is read by DuckDB's reader, every value as text; the typing package decides each
column's type from the whole file in that reading (:mod:`tikpay_source.columns.deciding`,
by the lossless rules of :mod:`tikpay_source.columns.types`: a column is a number only if
every value is one and reads back the same, so card numbers with leading zeros stay text). The read that
follows casts to those types: DuckDB writes it as the file a destination loads as it is
(:meth:`ReportFile.copy_to`, see :mod:`tikpay_source.loading.exports`), or hands back Arrow
record batches of bounded size for every other destination. For the written file the
pass over every row is left out: the types the sample suggests are checked on every
value as it is written, and only a miss reads the file the long way. A
column already loaded keeps its type, widened if this file needs more. Header names
become warehouse names that never collide (:mod:`tikpay_source.columns.names`). XML is
converted to a temporary CSV file (see :mod:`tikpay_source.files.xml_reports`) and read the
same way, so both formats get exactly the same rules. Memory stays flat as a report grows.

Local date-times in a report become timezone-aware timestamps in the operator's zone.
A wall-clock time repeated by a daylight-saving change cannot be told apart in the file;
it is read as the earlier of the two instants (the documented assumption). A time the
change skips is read with the offset before it.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from tikpay_source.columns.deciding import ColumnTypes, DecidedColumns, decide_columns
from tikpay_source.columns.names import column_names
from tikpay_source.columns.types import TEXT_TYPE, ColumnType
from tikpay_source.errors import LineTooLong, ReportFileError, TypesUnproven
from tikpay_source.files.file_errors import LINE_TOO_LONG, file_problem
from tikpay_source.files.xml_reports import xml_to_csv
from tikpay_source.settings import (
    BATCH_ROWS,
    READER_BUFFER_BYTES,
    READER_DUCKDB_CONFIG,
    READER_LONG_LINE_DUCKDB_CONFIG,
    READER_MAX_LINE_BYTES,
)

_CSV_OPTIONS = "header = true, delim = ',', quote = '\"', escape = '\"', strict_mode = true"
# DuckDB reads ahead in proportion to its line limit, so the larger limit (with the buffers it
# needs) is used only for a file that needs it: memory stays as it was for every other file.
_SMALL_BUFFERS = f", buffer_size = {READER_BUFFER_BYTES}"
_LONG_LINES = f", max_line_size = {READER_MAX_LINE_BYTES}"

_Result = TypeVar("_Result")


@dataclass(frozen=True)
class ReportColumn:
    """One column of a report: its warehouse name, how many values it has, its type before and after."""

    name: str
    values: int
    """How many values it has; for types guessed from the sample (proven or not), how many the sample has."""
    kind: ColumnType | None
    """The type the column is read as (None: no value, and no type known)."""
    loaded: ColumnType | None
    """The type the column had in the table before this file, if any."""
    text: str = ""
    """The DuckDB expression of the column's text in :attr:`ReportFile.text_source`."""
    least: str | None = None
    greatest: str | None = None
    """The least and greatest text of a column shaped like dates (fixed width: also the earliest and latest);
    for types guessed from the sample, the sample's."""


class ReportFile:
    """A report checked whole and ready to stream: its row count and columns are known up front.

    Opening does all the work that can fail on the file's content (splitting it into rows,
    deciding every column's type), so a bad file fails before a single row is handed to dlt.
    Opened to be written as a destination's file (:meth:`copy_to`), its types may instead be
    guessed from the sample (``proven`` is False): the write then checks every value, counts
    the rows and fails on the first value that does not fit, and the caller has the types
    decided the long way (:meth:`prove`) and writes again. Close it when done; it holds a
    DuckDB connection and, for XML, a converted copy.
    """

    def __init__(
        self,
        reading: _Reading | None,
        timezone: str,
        batch_rows: int,
        scratch: tempfile.TemporaryDirectory[str] | None = None,
        discard: Path | None = None,
        *,
        guess: bool = False,
    ) -> None:
        self._reading = reading
        self._discard = discard
        self._timezone = timezone
        self._batch_rows = batch_rows
        self._scratch = scratch
        self._reader: pa.RecordBatchReader | None = None
        self._schema: pa.Schema | None = None
        self._settle(reading.decide(guess) if reading is not None else None)

    def _settle(self, decided: DecidedColumns | None) -> None:
        self._schema = None
        self.rows = decided.rows if decided else 0
        """The file's rows (while not :attr:`proven`, the sample's: :meth:`copy_to` counts them)."""
        self.proofs: list[str] | None = decided.proofs if decided else None
        """Per column, what each value must pass for the guessed types to hold (None once proven)."""
        reading, self.columns = self._reading, []
        if reading is None or decided is None:
            self._query = self.text_source = None
            return
        self.text_source = reading.source
        """The file as DuckDB reads it with every column as text (see :attr:`ReportColumn.text`)."""
        self.columns = [
            ReportColumn(name, fact.values, kind, before, ident, *fact.shapes)
            for name, fact, kind, before, ident in zip(
                reading.names, decided.facts, decided.types, decided.loaded, reading.idents, strict=True
            )
        ]
        select = ", ".join(
            f"{(column.kind or TEXT_TYPE).read_sql(column.text)} AS {_ident(column.name)}"
            for column in self.columns
        )
        self._query = f"SELECT {select} FROM {reading.source}" if self.columns else None

    @property
    def proven(self) -> bool:
        """Whether every value is known to fit its column's type (not a guess from the sample)."""
        return self.proofs is None

    def prove(self) -> None:
        """Decide the types from every row, as a report not opened for a guess is; raises :class:`ReportFileError`."""
        if self._reading is not None and not self.proven:
            self._settle(self._reading.decide(False))

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema of the batches, before local timestamps get the operator's zone."""
        if self._query is None:
            return pa.schema([])
        if self._schema is None:
            con, query = self._connection(), self._query
            self._schema = _reporting_errors(lambda: con.sql(f"{query} LIMIT 0").to_arrow_table().schema)
        return self._schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The rows as Arrow record batches of at most ``batch_rows`` rows, timestamps in the operator's zone."""
        self.prove()
        if self._query is None:
            return
        con, query = self._connection(), self._query
        self._reader = reader = _reporting_errors(lambda: con.sql(query).to_arrow_reader(self._batch_rows))
        # after the check only the file changing on disk, or the disk itself, can stop the read
        while (batch := _reporting_errors(lambda: next(reader, None))) is not None:
            yield localise_timestamps(batch, self._timezone)

    def copy_to(self, path: Path, select: str, options: str) -> int:
        """Write ``SELECT {select}`` over the checked rows with DuckDB's ``COPY … TO path ({options})``.

        For destinations that load files as they are: the rows go from the report to the new
        file (or folder of files) inside DuckDB, never through Arrow or Python. ``select`` reads the file's text
        (:attr:`text_source`, each column's :attr:`ReportColumn.text`), each column checked
        by its proof while not :attr:`proven`. Returns the rows written; raises
        :class:`TypesUnproven` if a value failed the check (or any other error stopped a guessed write).
        """
        con, source = self._connection(), self.text_source
        if source is None or self._query is None:
            raise ReportFileError("the report file has no rows to write")
        if self._reader is not None:  # the connection runs one query at a time: the batches give way
            self._reader.close()
        # rows of a table have no order: without keeping the file's, DuckDB writes the file
        # in parallel as it reads (at 1 million rows 25 % faster and 120 MB lower at the peak)
        con.execute("SET preserve_insertion_order = false")
        copy = f"COPY (SELECT {select} FROM {source}) TO '{_sql_string(path)}' ({options})"
        if self.proven:
            return int(_reporting_errors(lambda: _one_row(con, copy))[0])
        try:
            (written,) = _one_row(con, copy)
        except duckdb.InterruptException:
            raise KeyboardInterrupt from None
        except duckdb.Error:  # a value the guess did not hold for, or a line the sample did not reach
            raise TypesUnproven("a value did not fit the type its column's sample suggested") from None
        self.rows, self.proofs = int(written), None
        return self.rows

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._reading is None:
            raise ReportFileError("the report file is closed")
        return self._reading.con

    def close(self) -> None:
        if self._reading is not None:
            self._reading.con.close()
            self._reading = None
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
    guess: bool = False,
) -> ReportFile:
    """Check a downloaded report whole and open it for streaming; raises :class:`ReportFileError`.

    Columns that ``known_types`` names keep that type, so one file cannot turn a loaded
    text column into numbers (or back); a file whose values do not fit fails as a whole.
    With ``discard``, the file is deleted when the report is closed, or at once if it fails.
    With ``guess``, a file larger than the sample may be opened with the sample's types, for
    :meth:`ReportFile.copy_to` to prove (see :class:`ReportFile`).
    """
    scratch = None
    try:
        if file_type == "xml":
            scratch = tempfile.TemporaryDirectory(prefix="tikpay-xml-", dir=path.parent)
            csv_path = Path(scratch.name) / "report.csv"
            if not xml_to_csv(path, csv_path):
                return ReportFile(None, timezone, batch_rows, scratch, path if discard else None)
            read_path = csv_path
        else:
            _check_complete(path)
            read_path = path
        reading = _Reading(read_path, known_types)
        try:
            return ReportFile(reading, timezone, batch_rows, scratch, path if discard else None, guess=guess)
        except BaseException:
            reading.con.close()
            raise
    except BaseException:
        if scratch is not None:
            scratch.cleanup()
        if discard:
            path.unlink(missing_ok=True)
        raise


def _check_complete(path: Path) -> None:
    """A CSV export has at least its header row (a cut download is caught by the download itself)."""
    if path.stat().st_size == 0:
        raise ReportFileError("the report file is empty (not even a header row)")


class _Reading:
    """A CSV file as DuckDB reads it, every value as text, and the deciding of its columns' types.

    The deciding passes (see :mod:`tikpay_source.columns.deciding`) also split the whole file
    into rows, so a malformed file fails there, before a single row is handed to dlt, and
    the read that follows casts only values already known to fit (when guessing, they read
    the sample, and the write that proves the guess splits the rest). DuckDB reads ahead in
    proportion to its line limit, so the larger limit (with the memory it needs) is taken
    only once a line needs it.
    """

    def __init__(self, path: Path, known_types: ColumnTypes | None) -> None:
        self.header = _header(path)
        self.names = column_names(self.header)
        self.idents = [_ident(name) for name in self.header]
        self._path, self._known_types = path, known_types
        self.source = _read_csv_call(path, self.header, _SMALL_BUFFERS)
        self.con = duckdb.connect(config=READER_DUCKDB_CONFIG)

    def decide(self, guess: bool) -> DecidedColumns:
        try:
            return self._decide(guess)
        except LineTooLong:  # a legal long field: read again with room for it
            memory = READER_LONG_LINE_DUCKDB_CONFIG["memory_limit"]
            self.con.execute(f"SET memory_limit = '{memory}'")
            self.source = _read_csv_call(self._path, self.header, _LONG_LINES)
            return self._decide(guess)

    def _decide(self, guess: bool) -> DecidedColumns:
        def query(sql: str) -> tuple[Any, ...]:
            return _reporting_errors(lambda: _one_row(self.con, sql))

        return decide_columns(query, self.idents, self.source, self.names, self._known_types, guess=guess)


def _one_row(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    return con.execute(sql).fetchall()[0]


def _header(path: Path) -> list[str]:
    """The header row's names, made unique; read by the CSV rules, not guessed from a sample of rows.

    DuckDB's sniffer would take the column count from the rows it samples, so a row with a
    field too many could silently become the file's shape. The header is one record.
    """
    try:
        # bad bytes later in the file are DuckDB's to report, with their line: decode them leniently here;
        # utf-8-sig: a byte order mark before the header is legal and not part of the first name
        with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as text:
            header = next(csv.reader(text, strict=True), [])
        "".join(header).encode("utf-8")
    except (csv.Error, UnicodeError, OSError):
        raise ReportFileError(
            "the report file is malformed: line 1: the header row is not CSV in UTF-8"
        ) from None
    unique: list[str] = []
    for name in header:
        candidate, n = name, 1
        while candidate in unique:
            n += 1
            candidate = f"{name}_{n}"
        unique.append(candidate)
    return unique


def _read_csv_call(path: Path, header: list[str], options: str) -> str:
    """Every column as text, with nothing left to detect: the file is split by the CSV rules alone."""
    spec = ", ".join(f"'{_sql_string(name)}': 'VARCHAR'" for name in header)
    return (
        f"read_csv('{_sql_string(path)}', {_CSV_OPTIONS}{options}, auto_detect = false, columns = {{{spec}}})"
    )


def _reporting_errors(step: Callable[[], _Result]) -> _Result:
    """Run a step of reading the file; DuckDB's error becomes one line saying what is wrong.

    An Arrow stream hands DuckDB's errors on as ``OSError``, as it does a failing disk.
    """
    try:
        return step()
    except (duckdb.Error, OSError) as exc:
        problem = file_problem(exc)
        raise (LineTooLong if LINE_TOO_LONG in problem else ReportFileError)(problem) from None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_string(text: object) -> str:
    return str(text).replace("'", "''")


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
