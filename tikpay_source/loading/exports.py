"""Handing a checked report to dlt as a ready file, for destinations that load such files as they are.

Arrow batches reach a warehouse through files dlt writes at extract: Parquet, which
DuckDB loads as it is and which dlt's normalize step rewrites as CSV for PostgreSQL's
``COPY … FROM STDIN``. Here DuckDB writes the file once, straight from the checked report
(every value already proved to fit its column's type), in the format the destination
loads (its :class:`~tikpay_source.loading.destinations.ReadyFile`): Parquet into DuckDB and
MotherDuck, CSV into PostgreSQL. The file goes to the load
package with ``dlt.mark.with_file_import`` and dlt's load job reads it unchanged. Nothing
passes through Python or Arrow on the way, and DuckDB writes the file in parallel.

The file is written when the report is fetched, before its window is marked loaded, so
that the write can still fail the file: a report larger than the typing sample is opened
with the types the sample suggests, and the write checks every value against them (and
each local time against the range its UTC offsets were worked out for). A value that does
not fit stops the write; the types are then decided from every row, the way a file is for
every other destination, and the file is written again. Most files are so read once.

The Parquet file holds the same typed columns as the batches would have (local times as
instants, in UTC). The CSV file speaks the dialect of dlt's PostgreSQL COPY job (see
``PostgresCsvCopyJob`` in dlt): a header of dlt's normalized column names, the configured
delimiter, ``"`` quoting only where a value needs it (a delimiter, a quote, a line break),
UTF-8, and an empty field for NULL (the job loads with ``NULL ''``; a report's empty values
are NULL already). Its rows keep every value of the checked file as its text, local
date-times followed by their UTC offset (so no session setting can shift them) and dates in
another format than ISO rewritten as ISO dates. In both, a local time takes its offset from
comparing its text with the zone's changes (see :func:`utc_offsets`), not from a zone lookup
per value.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dlt
import pyarrow as pa
from dlt.common.normalizers.naming import NamingConvention
from dlt.extract.hints import TResourceHints
from dlt.extract.items import DataItemWithMeta

from tikpay_source.columns.types import DATE, TEXT_TYPE, TIMESTAMP
from tikpay_source.errors import ReportFileError, ScratchUnusable, TypesUnproven
from tikpay_source.files.readers import ReportColumn, ReportFile
from tikpay_source.loading.destinations import PARQUET, ReadyFile
from tikpay_source.loading.tables import REPORT_HINTS, tagged_schema
from tikpay_source.planning.windows import DAY, Window
from tikpay_source.progress import log
from tikpay_source.settings import (
    BATCH_ROWS,
    JOB_ID_COLUMN,
    WINDOW_END_COLUMN,
    WINDOW_START_COLUMN,
)

# where a report's file is written, inside the pipeline's working directory
_SCRATCH_PREFIX = "tikpay-file-"
_OLD_SCRATCH_PREFIXES = ("tikpay-csv-",)  # of earlier versions, which wrote CSV files only
_ISO_DATE = "%Y-%m-%d"
# a guessed local date-time column's offsets are worked out for its window and this much either side
_MARGIN = timedelta(days=7)
_MISS = "a value does not fit the type its column's sample suggested"


@dataclass(frozen=True)
class ReadyFiles:
    """The files DuckDB wrote of one report, in the pipeline's working directory until closed."""

    paths: list[Path]
    file_format: str
    scratch: tempfile.TemporaryDirectory[str]

    def close(self) -> None:
        self.scratch.cleanup()


@dataclass(frozen=True)
class FileTarget:
    """How and where one run writes its reports' files: the destination's file, dlt's names, the operator's zone."""

    ready: ReadyFile
    naming: NamingConvention
    timezone: str
    directory: Path | None = None
    """The pipeline's working directory, so that dlt takes the files by a hard link (None: the system's temp)."""


def write_ready_files(report: ReportFile, window: Window, job_id: str, target: FileTarget) -> ReadyFiles:
    """Write ``report`` with its tag columns as ``target``'s files.

    Types guessed from the sample are proved on every value as it is written; on a miss the
    file's types are decided from every row (which is where a malformed file fails) and it is
    written again. Raises :class:`ReportFileError` for the file's content and
    :class:`ScratchUnusable` when a file whose every value fits cannot be written (the disk).
    """
    ready = target.ready
    scratch = tempfile.TemporaryDirectory(
        prefix=_SCRATCH_PREFIX, dir=target.directory, ignore_cleanup_errors=True
    )
    written = Path(scratch.name) / f"report.{ready.file_format}"
    try:
        try:
            _copy(report, written, window, job_id, target)
        except TypesUnproven:
            log.debug("%s: %s; typing the file from every row", window.describe(), _MISS)
            _remove(written)
            report.prove()  # where a malformed file fails, as it does unguessed
            _copy(report, written, window, job_id, target)
        paths = sorted(written.iterdir()) if written.is_dir() else [written]
        return ReadyFiles(paths, ready.file_format, scratch)
    except ReportFileError as exc:
        scratch.cleanup()
        if not report.proven:
            raise
        # every value is known to fit: what stopped the write is the disk, not the file
        raise ScratchUnusable(f"writing the report's file for {ready.file_format} failed: {exc}") from None
    except BaseException:
        scratch.cleanup()
        raise


def ready_file_items(
    report: ReportFile, files: ReadyFiles, timezone: str, write_disposition: Any = None
) -> Iterator[DataItemWithMeta]:
    """Hand ``report``'s written ``files`` to dlt as files to import; ``write_disposition``, if given, goes with them."""
    types, hints = _import_hints(report, timezone, files.file_format, write_disposition)
    for number, path in enumerate(files.paths):
        # dlt adds up a table's rows from its files' counts; how DuckDB split them is not known
        rows = report.rows if number == 0 else 0
        item = dlt.mark.with_file_import(str(path), files.file_format, rows, hints=types)
        # dlt's helper takes column types (an Arrow table) or resource hints; its item holds both
        item.meta.hints = hints
        yield item


def _copy(report: ReportFile, path: Path, window: Window, job_id: str, target: FileTarget) -> None:
    """One ``COPY`` of the report to ``path``: each column in the destination's form, checked while guessed."""
    ready, timezone = target.ready, target.timezone
    columns = [_bounded(column, window) for column in report.columns] if not report.proven else report.columns
    if ready.file_format == PARQUET:
        # row groups of a batch's size: DuckDB holds one per thread while it writes
        values, options = _typed_columns(columns, timezone), f"FORMAT PARQUET, ROW_GROUP_SIZE {BATCH_ROWS}"
    else:
        # a file per DuckDB thread (a folder of them), which dlt COPYs side by side, each on a
        # connection of its own: at 1 million rows the load took 2.0 s instead of 3.0 s
        values, options = _text_columns(columns, timezone), _csv_options(ready.delimiter)
        if report.rows:  # a report without rows is one file of its header, so its table is made
            options += ", PER_THREAD_OUTPUT true"
    proofs = report.proofs or [None] * len(columns)
    checked = (
        _checked(sql, column, proof) for sql, column, proof in zip(values, columns, proofs, strict=True)
    )
    select = ", ".join(_named(checked, columns, window, job_id, target.naming, ready.file_format))
    report.copy_to(path, select, options)


def _checked(sql: str, column: ReportColumn, proof: str | None) -> str:
    """``sql`` for the values that pass ``proof`` (and NULLs); any other value stops the write."""
    if proof is None or proof == "true":
        return sql
    if column.kind is not None and column.kind.kind == TIMESTAMP and column.least and column.greatest:
        bounds = f" AND {column.text} BETWEEN {_literal(column.least)} AND {_literal(column.greatest)}"
        proof = f"({proof}){bounds}"
    return f"CASE WHEN {column.text} IS NULL OR ({proof}) THEN {sql} ELSE error({_literal(_MISS)}) END"


def _bounded(column: ReportColumn, window: Window) -> ReportColumn:
    """A guessed local date-time column, its range widened to the window and a week either side.

    Its UTC offsets are worked out for that range (:func:`_with_offset`) and each value is
    checked to be inside it (:func:`_checked`): the sample's range alone would stop the write
    at the first time later in the window.
    """
    kind = column.kind
    if kind is None or kind.kind != TIMESTAMP or column.least is None or column.greatest is None:
        return column
    wall = f"%Y-%m-%d{_separator(kind.fmt or '')}%H:%M:%S"
    earliest = (window.start - _MARGIN).strftime(wall)
    latest = (window.end + _MARGIN).strftime(wall)
    return replace(column, least=min(column.least, earliest), greatest=max(column.greatest, latest))


def _import_hints(
    report: ReportFile, timezone: str, file_format: str, write_disposition: Any
) -> tuple[pa.Table, TResourceHints | None]:
    """What goes with each written file: the column types the batches would have given the table, and hints."""
    schema = tagged_schema(report.schema, timezone)
    columns = None
    if file_format == PARQUET:
        # DuckDB writes every Parquet column as optional, and dlt rewrites a file whose columns
        # disagree with the table's on that: the tag columns (never NULL) are declared nullable,
        # in the table's schema too (an existing NOT NULL column keeps its constraint)
        schema = pa.schema([field.with_nullable(True) for field in schema])
        columns = {name: {**hints, "nullable": True} for name, hints in REPORT_HINTS["columns"].items()}
    hints = None
    if write_disposition or columns:
        hints = dlt.mark.make_hints(write_disposition=write_disposition, columns=columns)
    return schema.empty_table(), hints


def _csv_options(delimiter: str) -> str:
    """The dialect of dlt's PostgreSQL COPY job: a header, ``"`` quoting where needed, empty for NULL."""
    return f"FORMAT CSV, HEADER true, DELIMITER {_literal(delimiter)}, QUOTE '\"', ESCAPE '\"', NULLSTR ''"


def _remove(written: Path) -> None:
    """A file, or a folder of per-thread files, that a stopped write left."""
    if written.is_dir():
        shutil.rmtree(written, ignore_errors=True)
    else:
        written.unlink(missing_ok=True)


def remove_leftovers(working_dir: Path) -> None:
    """Files of a run killed before it could delete them (dlt holds its own links to what it took).

    Once per run, before its first file: the files of this run's report are still to be handed to dlt.
    """
    for prefix in (_SCRATCH_PREFIX, *_OLD_SCRATCH_PREFIXES):
        for leftover in working_dir.glob(f"{prefix}*"):
            shutil.rmtree(leftover, ignore_errors=True)


def _text_columns(columns: list[ReportColumn], timezone: str) -> Iterator[str]:
    """Each column as the text PostgreSQL reads into its type: mostly the file's own text.

    Every value is known to fit its column already, and PostgreSQL reads integers, decimals,
    ``true``/``false`` in any case and ISO dates as the file writes them. A local date-time
    gets its UTC offset appended (see :func:`utc_offsets`); other date formats are rewritten
    as ISO dates, which no ``DateStyle`` can misread.
    """
    for column in columns:
        text, kind = column.text, column.kind
        if kind is not None and kind.kind == TIMESTAMP:
            text = _with_offset(text, kind.fmt or "", column, timezone)
        elif kind is not None and kind.kind == DATE and kind.fmt != _ISO_DATE:
            text = f"CAST({kind.read_sql(text)} AS VARCHAR)"
        yield text


def _typed_columns(columns: list[ReportColumn], timezone: str) -> Iterator[str]:
    """Each column cast to its type as the batches are; a local date-time becomes its instant.

    The instant is read from the text with its UTC offset appended (see :func:`utc_offsets`),
    so it is the one the Arrow path gives the same wall time.
    """
    for column in columns:
        kind = column.kind or TEXT_TYPE
        if kind.kind == TIMESTAMP and column.values:
            with_offset = _with_offset(column.text, kind.fmt or "", column, timezone)
            yield f"strptime({with_offset}, {_literal((kind.fmt or '') + '%z')})"
        elif kind.kind == TIMESTAMP:  # no value at all: NULL, typed as an instant all the same
            yield "CAST(NULL AS TIMESTAMPTZ)"
        else:
            yield kind.read_sql(column.text)


def _named(
    values: Iterator[str],
    columns: list[ReportColumn],
    window: Window,
    job_id: str,
    naming: NamingConvention,
    file_format: str,
) -> Iterator[str]:
    """The report's columns under dlt's normalized names, then the tag columns every row carries."""
    for column, sql in zip(columns, values, strict=True):
        yield f"{sql} AS {_ident(naming.normalize_identifier(column.name))}"
    start, end = window.start.isoformat(sep=" "), window.end.isoformat(sep=" ")
    as_timestamp = "TIMESTAMP " if file_format == PARQUET else ""
    tags: dict[str, str] = {
        JOB_ID_COLUMN: _literal(job_id),
        WINDOW_START_COLUMN: as_timestamp + _literal(start),
        WINDOW_END_COLUMN: as_timestamp + _literal(end),
    }
    for name, value in tags.items():
        yield f"{value} AS {_ident(naming.normalize_identifier(name))}"


def _with_offset(text: str, fmt: str, column: ReportColumn, timezone: str) -> str:
    """SQL for a local date-time column's text followed by its UTC offset, chosen by comparing texts.

    The column's values are in one ISO format of fixed width, so comparing texts compares times.
    """
    if column.least is None or column.greatest is None:
        return text
    first, changes = utc_offsets(ZoneInfo(timezone), _wall_time(column.least), _wall_time(column.greatest))
    if not changes:
        return f"{text} || {_literal(first)}"
    sep = _separator(fmt)
    branches = [first, *(after for _, after in changes)]
    cases = " ".join(
        f"WHEN {text} < {_literal(at.strftime(f'%Y-%m-%d{sep}%H:%M:%S'))} THEN {_literal(offset)}"
        for (at, _), offset in zip(changes, branches, strict=False)
    )
    return f"{text} || CASE {cases} ELSE {_literal(branches[-1])} END"


def _separator(fmt: str) -> str:
    """What a date-time format puts between the date and the time (``T`` or a space)."""
    return fmt[len(_ISO_DATE)] if len(fmt) > len(_ISO_DATE) else " "


def utc_offsets(
    zone: ZoneInfo, earliest: datetime, latest: datetime
) -> tuple[str, list[tuple[datetime, str]]]:
    """The UTC offset of local wall times from ``earliest`` to ``latest``: the first, then each change.

    Each change is (the first wall time with the new offset, the new offset), as ``+HH:MM``.
    A wall time a fall-back repeats is the earlier instant, and one a spring-forward skips
    takes the offset before the change (as the Arrow path reads them): both keep the old
    offset until the wall time the later of the two offsets reaches at the change.
    """
    margin = timedelta(days=2)  # more than any UTC offset, so the first day starts before ``earliest``
    start = datetime.combine(max(earliest.date(), date.min + margin) - margin, time(), timezone.utc)
    stop = datetime.combine(min(latest.date(), date.max - margin) + margin, time(), timezone.utc)
    first = start.astimezone(zone).utcoffset() or timedelta(0)
    changes: list[tuple[datetime, str]] = []
    before, day = first, start
    while day < stop:
        after = (day + DAY).astimezone(zone).utcoffset() or timedelta(0)
        if after != before:
            instant = _first_second_with(zone, after, day, day + DAY)
            wall = (instant + max(before, after)).replace(tzinfo=None)
            if earliest < wall <= latest:
                changes.append((wall, _offset_text(after)))
            elif wall <= earliest:
                first = after
            before = after
        day += DAY
    return _offset_text(first), changes


def _first_second_with(zone: ZoneInfo, offset: timedelta, low: datetime, high: datetime) -> datetime:
    """The first UTC second in (low, high] at which ``zone`` has ``offset`` (it has at ``high``)."""
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if (middle.astimezone(zone).utcoffset() or timedelta(0)) == offset:
            high = middle
        else:
            low = middle
    return high


def _offset_text(offset: timedelta) -> str:
    seconds = int(offset.total_seconds())
    sign, seconds = ("-" if seconds < 0 else "+"), abs(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")


def _wall_time(text: str) -> datetime:
    """A fixed-width ISO date-time text (``T`` or a space between date and time) to the second."""
    return datetime.strptime(text[:10] + " " + text[11:19], "%Y-%m-%d %H:%M:%S")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: object) -> str:
    return "'" + str(text).replace("'", "''") + "'"
