"""Handing a checked report to dlt as a ready CSV file, for destinations that COPY CSV files as they are.

Into PostgreSQL dlt loads CSV with ``COPY … FROM STDIN``, but Arrow batches get there the
long way: written as Parquet at extract, then rewritten as CSV by dlt's normalize step,
which takes most of the time of a load. Here DuckDB writes the CSV once, straight from
the checked report's text (every value already proved to fit its column's type), and the
file goes to the load package with ``dlt.mark.with_file_import``; dlt's PostgreSQL COPY
job then loads it unchanged.

The file speaks the dialect of that job (see ``PostgresCsvCopyJob`` in dlt): a header of
dlt's normalized column names, the configured delimiter, ``"`` quoting only where a value
needs it (a delimiter, a quote, a line break), UTF-8, and an empty field for NULL (the job
loads with ``NULL ''``; a report's empty values are NULL already). Local date-times carry
their UTC offset, so no session setting can shift them. The rows keep every value of the
checked file as its text: nothing is parsed again in Python, and nothing is converted in
DuckDB except a date in another format than ISO.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dlt
from dlt.common.destination.configuration import CsvFormatConfiguration
from dlt.common.normalizers.naming import NamingConvention
from dlt.common.pipeline import current_pipeline
from dlt.extract.hints import TResourceHints
from dlt.extract.items import DataItemWithMeta

from tikpay_source.column_types import DATE, TIMESTAMP
from tikpay_source.readers import ReportColumn, ReportFile
from tikpay_source.settings import (
    CSV_FILE_DESTINATIONS,
    JOB_ID_COLUMN,
    WINDOW_END_COLUMN,
    WINDOW_START_COLUMN,
)
from tikpay_source.tables import tagged_schema
from tikpay_source.windows import DAY, Window

# where a report's CSV file is written, inside the pipeline's working directory
_SCRATCH_PREFIX = "tikpay-csv-"
_ISO_DATE = "%Y-%m-%d"


def csv_file_delimiter() -> str | None:
    """The delimiter to write when this run's destination loads our CSV files as they are, else None.

    Learnt from the running pipeline, at extract time: the source itself is built before
    anyone knows where it will load. A destination whose CSV settings differ from what
    this module writes (no header, another encoding) keeps the Arrow batches.
    """
    pipeline = current_pipeline()
    destination = getattr(pipeline, "destination", None)
    if destination is None or destination.destination_type not in CSV_FILE_DESTINATIONS:
        return None
    configured = destination.configuration(None, accept_partial=True)
    csv_format: CsvFormatConfiguration = getattr(configured, "csv_format", None) or CsvFormatConfiguration()
    if not csv_format.include_header or csv_format.encoding.replace("-", "").lower() != "utf8":
        return None
    return csv_format.delimiter


def csv_file_items(
    report: ReportFile,
    window: Window,
    job_id: str,
    timezone: str,
    delimiter: str,
    hints: TResourceHints | None = None,
) -> Iterator[DataItemWithMeta]:
    """Write ``report`` with its tag columns to a CSV file and yield it to dlt as a file to import.

    The file is written next to the pipeline's own files, so dlt takes it into the load
    package by a hard link, not a copy; it is gone once dlt has it. ``hints`` (the write
    disposition, say) go to the table's resource with the file.
    """
    naming = dlt.current.source_schema().naming
    working_dir = getattr(current_pipeline(), "working_dir", None)
    if working_dir:
        _remove_leftovers(Path(working_dir))
    with tempfile.TemporaryDirectory(
        prefix=_SCRATCH_PREFIX, dir=working_dir, ignore_cleanup_errors=True
    ) as tmp:
        path = Path(tmp) / "report.csv"
        select = ", ".join(_select_list(report, window, job_id, timezone, naming))
        options = (
            f"FORMAT CSV, HEADER true, DELIMITER {_literal(delimiter)}, QUOTE '\"', ESCAPE '\"', NULLSTR ''"
        )
        report.copy_csv(path, select, options)
        # the schema of the rows as dlt would have seen them in batches: dlt types the table from it
        schema = tagged_schema(report.schema, timezone)
        item = dlt.mark.with_file_import(str(path), "csv", report.rows, hints=schema.empty_table())
        # dlt's helper takes column types (an Arrow table) or resource hints; its item holds both
        item.meta.hints = hints
        yield item


def _remove_leftovers(working_dir: Path) -> None:
    """Files of a run killed before it could delete them (dlt holds its own links to what it took)."""
    for leftover in working_dir.glob(f"{_SCRATCH_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _select_list(
    report: ReportFile, window: Window, job_id: str, timezone: str, naming: NamingConvention
) -> Iterator[str]:
    """Each column as the text PostgreSQL reads into its type: mostly the file's own text.

    Every value is known to fit its column already, and PostgreSQL reads integers, decimals,
    ``true``/``false`` in any case and ISO dates as the file writes them. A local date-time
    gets its UTC offset appended (see :func:`utc_offsets`); other date formats are rewritten
    as ISO dates, which no ``DateStyle`` can misread.
    """
    for column in report.columns:
        text, kind = column.text, column.kind
        if kind is not None and kind.kind == TIMESTAMP:
            text = _with_offset(text, kind.fmt or "", column, timezone)
        elif kind is not None and kind.kind == DATE and kind.fmt != _ISO_DATE:
            text = f"CAST({kind.read_sql(text)} AS VARCHAR)"
        yield f"{text} AS {_ident(naming.normalize_identifier(column.name))}"
    tags: dict[str, Any] = {
        JOB_ID_COLUMN: job_id,
        WINDOW_START_COLUMN: window.start.isoformat(sep=" "),
        WINDOW_END_COLUMN: window.end.isoformat(sep=" "),
    }
    for name, value in tags.items():
        yield f"{_literal(value)} AS {_ident(naming.normalize_identifier(name))}"


def _with_offset(text: str, fmt: str, column: ReportColumn, timezone: str) -> str:
    """SQL for a local date-time column's text followed by its UTC offset, chosen by comparing texts.

    The column's values are in one ISO format of fixed width, so comparing texts compares times.
    """
    if column.least is None or column.greatest is None:
        return text
    first, changes = utc_offsets(ZoneInfo(timezone), _wall_time(column.least), _wall_time(column.greatest))
    if not changes:
        return f"{text} || {_literal(first)}"
    sep = fmt[len("%Y-%m-%d")] if len(fmt) > len("%Y-%m-%d") else " "
    branches = [first, *(after for _, after in changes)]
    cases = " ".join(
        f"WHEN {text} < {_literal(at.strftime(f'%Y-%m-%d{sep}%H:%M:%S'))} THEN {_literal(offset)}"
        for (at, _), offset in zip(changes, branches, strict=False)
    )
    return f"{text} || CASE {cases} ELSE {_literal(branches[-1])} END"


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
