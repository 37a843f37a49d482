"""The shape of the tables: ``report_jobs`` rows, tagged report batches, and each table's dlt hints.

``report_jobs`` is merged on ``job_id``, so a job's row is updated as its status
changes. Report tables are merged with the delete-insert strategy on the window start:
loading a window again replaces that window's rows instead of doubling them. No report
column is listed anywhere: the columns come from each file. Each table has a resource
of its own (see :mod:`tikpay_source`), so these hints are the resources' own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import dlt
import pyarrow as pa

from tikpay_source.api import IN_PROGRESS, ApiJob
from tikpay_source.errors import ConfigError
from tikpay_source.readers import ReportFile
from tikpay_source.settings import (
    JOB_ID_COLUMN,
    REPORT_TABLES,
    WINDOW_END_COLUMN,
    WINDOW_START_COLUMN,
)
from tikpay_source.state import Entry
from tikpay_source.windows import Window, parse_local

JOB_COLUMNS: dict[str, dict[str, Any]] = {
    "job_id": {"data_type": "text", "nullable": False},
    "report_type": {"data_type": "text"},
    "file_type": {"data_type": "text"},
    "window_start": {"data_type": "timestamp", "timezone": False},
    "window_end": {"data_type": "timestamp", "timezone": False},
    "status": {"data_type": "text"},
    "load_status": {"data_type": "text"},
    "timezone": {"data_type": "text"},
    "created_at": {"data_type": "timestamp"},
    "completed_at": {"data_type": "timestamp"},
    "expires_at": {"data_type": "timestamp"},
    "rows_loaded": {"data_type": "bigint"},
    "file_size_bytes": {"data_type": "bigint"},
    "attempt": {"data_type": "bigint"},
    "error": {"data_type": "text"},
    # a job's row may be yielded several times in one run (submitted, then loaded): the latest wins
    "updated_at": {"data_type": "timestamp", "dedup_sort": "desc"},
}

JOB_HINTS: dict[str, Any] = {"primary_key": "job_id", "write_disposition": "merge", "columns": JOB_COLUMNS}

REPORT_HINTS: dict[str, Any] = {
    "write_disposition": {"disposition": "merge", "strategy": "delete-insert"},
    "merge_key": WINDOW_START_COLUMN,
    "columns": {
        JOB_ID_COLUMN: {"data_type": "text", "nullable": False},
        # the window as the API saw it: naive local wall-clock time, like startTime/endTime
        WINDOW_START_COLUMN: {"data_type": "timestamp", "timezone": False, "nullable": False},
        WINDOW_END_COLUMN: {"data_type": "timestamp", "timezone": False, "nullable": False},
    },
}

# load_status of a report_jobs row whose file is handed to its table's resource
LOADED_STATUS = "loaded"

_TAG_TYPES = {
    JOB_ID_COLUMN: pa.string(),
    WINDOW_START_COLUMN: pa.timestamp("us"),
    WINDOW_END_COLUMN: pa.timestamp("us"),
}


def selected_report_types(report_types: Iterable[str], selected_resources: Iterable[str]) -> tuple[str, ...]:
    """The configured report types whose table's resource is selected, in the configured order."""
    chosen = set(selected_resources)
    return tuple(rt for rt in report_types if REPORT_TABLES[rt] in chosen)


def _aware(local: str | None, zone: ZoneInfo) -> datetime | None:
    """An API local time as an aware datetime in the operator's zone (None stays None)."""
    if not local:
        return None
    try:
        return parse_local(local).replace(tzinfo=zone)
    except ConfigError:
        return None


def job_row(
    entry: Entry,
    zone: ZoneInfo,
    *,
    load_status: str,
    job: ApiJob | None = None,
    rows_loaded: int | None = None,
    file_size: int | None = None,
) -> dict[str, Any]:
    """One ``report_jobs`` row for a job (never its download link)."""
    return {
        "job_id": (job.job_id if job else entry.job_id),
        "report_type": entry.window.report_type,
        "file_type": (job.file_type if job else entry.file_type),
        "window_start": entry.window.start,
        "window_end": entry.window.end,
        "status": job.status if job else IN_PROGRESS,
        "load_status": load_status,
        "timezone": (job.timezone if job and job.timezone else zone.key),
        "created_at": _aware(job.created_at, zone) if job else None,
        "completed_at": _aware(job.completed_at, zone) if job else None,
        "expires_at": _aware(job.expires_at, zone) if job else None,
        "rows_loaded": rows_loaded,
        "file_size_bytes": file_size,
        "attempt": entry.attempts,
        "error": entry.error,
        "updated_at": datetime.now(timezone.utc),
    }


def tag_batch(batch: pa.RecordBatch, window: Window, job_id: str) -> pa.RecordBatch:
    """A batch of report rows tagged with the job and window it came from."""
    rows = batch.num_rows
    tagged = batch
    for name, value in (
        (JOB_ID_COLUMN, job_id),
        (WINDOW_START_COLUMN, window.start),
        (WINDOW_END_COLUMN, window.end),
    ):
        scalar = pa.scalar(value, _TAG_TYPES[name])
        tagged = tagged.append_column(pa.field(name, scalar.type, nullable=False), pa.repeat(scalar, rows))
    return tagged


def tagged_schema(schema: pa.Schema, timezone: str) -> pa.Schema:
    """The schema of a report's tagged batches, from the reader's: local timestamps in the operator's zone.

    What dlt types a table from, whether it receives the batches or a file written from the same rows.
    """
    fields = [
        field.with_type(pa.timestamp(field.type.unit, tz=timezone))
        if pa.types.is_timestamp(field.type) and field.type.tz is None
        else field
        for field in schema
    ]
    tags = [pa.field(name, arrow_type, nullable=False) for name, arrow_type in _TAG_TYPES.items()]
    return pa.schema(fields + tags)


def _dlt_type(arrow_type: pa.DataType) -> str | None:
    """The dlt data type an Arrow column loads as (None for a column with no values at all)."""
    checks = (
        (pa.types.is_integer, "bigint"),
        (pa.types.is_floating, "double"),
        (pa.types.is_boolean, "bool"),
        (pa.types.is_timestamp, "timestamp"),
        (pa.types.is_date, "date"),
        (pa.types.is_time, "time"),
        (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "text"),
    )
    return next((name for check, name in checks if check(arrow_type)), None)


class ColumnTypeMemory:
    """The type each report column was first loaded with, so every later file is read the same way.

    Types are sniffed per file; without this, a window whose ``route_id`` values all look
    numeric would load as numbers into a text column (or the reverse), and the load
    would fail or round silently. Earlier loads are known from the schema dlt keeps;
    this run's batches are remembered as they are yielded.
    """

    def __init__(self) -> None:
        self._this_run: dict[str, dict[str, str]] = {}

    def lookup(self, report_type: str) -> Callable[[str], str | None]:
        """A function from a file's column name to the type its table already has, if any."""
        table = REPORT_TABLES[report_type]
        schema = dlt.current.source_schema()
        stored = schema.tables.get(table, {}).get("columns", {})
        this_run = self._this_run.get(table, {})
        normalise = schema.naming.normalize_identifier

        def loaded_type(name: str) -> str | None:
            column = normalise(name)
            return this_run.get(column) or stored.get(column, {}).get("data_type")

        return loaded_type

    def remember(self, report_type: str, report: ReportFile) -> None:
        """Note the types of a report about to be loaded (the first one for each column wins)."""
        seen = self._this_run.setdefault(REPORT_TABLES[report_type], {})
        normalise = dlt.current.source_schema().naming.normalize_identifier
        for field in report.schema:
            loaded_as = _dlt_type(field.type)
            if loaded_as and report.non_null.get(field.name):  # an empty column says nothing of its type
                seen.setdefault(normalise(field.name), loaded_as)
