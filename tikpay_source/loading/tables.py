"""The shape of the tables: ``report_jobs`` and ``run_history`` rows, tagged report batches, dlt hints.

``report_jobs`` is merged on ``job_id``, so a job's row is updated as its status
changes. Report tables are merged with the delete-insert strategy on the window start:
loading a window again replaces that window's rows instead of doubling them (a window that
cannot be in the table yet is appended instead, see :mod:`tikpay_source.loading.writers`). No report
column is listed anywhere: the columns come from each file. Each table has a resource
of its own (see :mod:`tikpay_source`), so these hints are the resources' own.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from tikpay_source.api.models import IN_PROGRESS, ApiJob, local_instant
from tikpay_source.outcome import RunSummary
from tikpay_source.planning.state import Entry
from tikpay_source.planning.windows import Window
from tikpay_source.settings import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_QUOTA_STOP,
    EXIT_WINDOWS_FAILED,
    JOB_ID_COLUMN,
    REPORT_TABLES,
    WINDOW_END_COLUMN,
    WINDOW_START_COLUMN,
)

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
    # whether this job's rows are the ones its span holds: false once a later load covers the span
    # (set by the post-load step, :func:`tikpay_source.loading.views.create_views`)
    "is_current": {"data_type": "bool"},
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

RUN_COLUMNS: dict[str, dict[str, Any]] = {
    "run_id": {"data_type": "text", "nullable": False},
    "started_at": {"data_type": "timestamp"},
    "finished_at": {"data_type": "timestamp"},
    "exit_code": {"data_type": "bigint"},
    "outcome": {"data_type": "text"},
    "requests_spent": {"data_type": "bigint"},
    "quota_left": {"data_type": "bigint"},
    "submitted": {"data_type": "bigint"},
    "adopted": {"data_type": "bigint"},
    "windows_loaded": {"data_type": "bigint"},
    "rows_loaded": {"data_type": "bigint"},
    **{
        f"{kind}_{table}": {"data_type": "bigint"}
        for table in REPORT_TABLES.values()
        for kind in ("windows", "rows")
    },
    "errors": {"data_type": "text"},
}
RUN_HINTS: dict[str, Any] = {"write_disposition": "append", "columns": RUN_COLUMNS}
OUTCOMES = {
    EXIT_OK: "done",
    EXIT_FAILED: "failed",
    EXIT_BAD_INPUT: "bad input",
    EXIT_QUOTA_STOP: "stopped for quota",
    EXIT_WINDOWS_FAILED: "windows failed",
}

# load_status of a report_jobs row whose file is handed to its table's resource; of a job with no data
LOADED_STATUS = "loaded"
NO_DATA_STATUS = "no_data"
# the load_status of a job whose rows (none, for no_data) are what its table holds for its span
ROWS_IN_TABLE = (LOADED_STATUS, NO_DATA_STATUS)

_TAG_TYPES = {
    JOB_ID_COLUMN: pa.string(),
    WINDOW_START_COLUMN: pa.timestamp("us"),
    WINDOW_END_COLUMN: pa.timestamp("us"),
}


def selected_report_types(report_types: Iterable[str], selected_resources: Iterable[str]) -> tuple[str, ...]:
    """The configured report types whose table's resource is selected, in the configured order."""
    chosen = set(selected_resources)
    return tuple(rt for rt in report_types if REPORT_TABLES[rt] in chosen)


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
        "created_at": local_instant(job.created_at, zone) if job else None,
        "completed_at": local_instant(job.completed_at, zone) if job else None,
        "expires_at": local_instant(job.expires_at, zone) if job else None,
        "rows_loaded": rows_loaded,
        "file_size_bytes": file_size,
        "attempt": entry.attempts,
        "error": entry.error,
        "is_current": load_status in ROWS_IN_TABLE,
        "updated_at": datetime.now(timezone.utc),
    }


def run_row(summary: RunSummary) -> dict[str, Any]:
    """The run's ``run_history`` row."""
    row: dict[str, Any] = {
        "run_id": summary.run_id,
        "started_at": summary.started_at,
        "finished_at": summary.finished_at,
        "exit_code": summary.exit_code,
        "outcome": OUTCOMES.get(summary.exit_code, str(summary.exit_code)),
        "requests_spent": summary.requests,
        "quota_left": summary.quota_left,
        "submitted": summary.submitted,
        "adopted": summary.adopted,
        "windows_loaded": summary.windows_loaded,
        "rows_loaded": sum(summary.rows.values()),
        "errors": "\n".join(summary.errors()) or None,
    }
    for table in REPORT_TABLES.values():
        row[f"windows_{table}"] = summary.windows.get(table, 0)
        row[f"rows_{table}"] = summary.rows.get(table, 0)
    return row


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
