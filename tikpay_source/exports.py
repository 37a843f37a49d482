"""Handing a checked report to dlt as a ready CSV file, for destinations that COPY CSV files as they are.

Into PostgreSQL dlt loads CSV with ``COPY … FROM STDIN``, but Arrow batches get there the
long way: written as Parquet at extract, then rewritten as CSV by dlt's normalize step,
which takes most of the time of a load. Here DuckDB writes the CSV once, straight from
the checked report (the same typed ``read_csv`` the Arrow batches come from), and the
file goes to the load package with ``dlt.mark.with_file_import``; dlt's PostgreSQL COPY
job then loads it unchanged.

The file speaks the dialect of that job (see ``PostgresCsvCopyJob`` in dlt): a header of
dlt's normalized column names, the configured delimiter, ``"`` quoting only where a value
needs it (a delimiter, a quote, a line break), UTF-8, and an empty field for NULL (the job
loads with ``NULL ''``; a report's empty values are NULL already). Timestamps carry their
offset, so no session setting can shift them. The rows keep every value of the checked
file: nothing is parsed again in Python.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.destination.configuration import CsvFormatConfiguration
from dlt.common.normalizers.naming import NamingConvention
from dlt.common.pipeline import current_pipeline
from dlt.extract.hints import TResourceHints
from dlt.extract.items import DataItemWithMeta

from tikpay_source.readers import ReportFile
from tikpay_source.settings import (
    CSV_FILE_DESTINATIONS,
    DST_FOLD_MAX_HOURS,
    JOB_ID_COLUMN,
    WINDOW_END_COLUMN,
    WINDOW_START_COLUMN,
)
from tikpay_source.tables import tagged_schema
from tikpay_source.windows import Window

# A naive wall-clock time as an instant. DuckDB's own choice is the *later* of the two instants
# a fall-back repeats; the reader (and so every other destination) takes the earlier one, so
# that one is tried first: the instant {fold} hours earlier, moved on by {fold} hours of real
# time. A time a spring-forward skips keeps DuckDB's choice, the offset before the change, as
# the reader does. Only a time less than {fold} hours after a change needs that: elsewhere both
# instants are exactly {fold} hours apart, which costs two zone lookups instead of five.
_LATER = "timezone({zone}, {c})"
_EARLIER = "(timezone({zone}, {c} - INTERVAL {fold} HOUR) + INTERVAL {fold} HOUR)"
_EARLIEST_INSTANT = (
    f"CASE WHEN epoch_us({_LATER}) - epoch_us(timezone({{zone}}, {{c}} - INTERVAL {{fold}} HOUR))"
    f" = {{fold}} * 3600000000 THEN {_LATER}"
    f" WHEN timezone({{zone}}, {_EARLIER}) = {{c}} THEN {_EARLIER} ELSE {_LATER} END"
)
# where a report's CSV file is written, inside the pipeline's working directory
_SCRATCH_PREFIX = "tikpay-csv-"
# an instant as UTC text with its offset: no session time zone or zone lookup involved
_AS_UTC_TEXT = "CAST(make_timestamp(epoch_us({instant})) AS VARCHAR) || '+00'"


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
        select = ", ".join(_select_list(report.schema, window, job_id, timezone, naming))
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
    schema: pa.Schema, window: Window, job_id: str, timezone: str, naming: NamingConvention
) -> Iterator[str]:
    zone = _literal(timezone)
    for field in schema:
        column = _ident(field.name)
        if pa.types.is_timestamp(field.type) and field.type.tz is None:
            instant = _EARLIEST_INSTANT.format(zone=zone, c=column, fold=DST_FOLD_MAX_HOURS)
            column = _AS_UTC_TEXT.format(instant=instant)
        elif pa.types.is_timestamp(field.type):
            column = _AS_UTC_TEXT.format(instant=column)
        yield f"{column} AS {_ident(naming.normalize_identifier(field.name))}"
    tags: dict[str, Any] = {
        JOB_ID_COLUMN: job_id,
        WINDOW_START_COLUMN: window.start.isoformat(sep=" "),
        WINDOW_END_COLUMN: window.end.isoformat(sep=" "),
    }
    for name, value in tags.items():
        yield f"{_literal(value)} AS {_ident(naming.normalize_identifier(name))}"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: object) -> str:
    return "'" + str(text).replace("'", "''") + "'"
