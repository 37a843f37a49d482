"""Delta tables on dlt's ``filesystem`` destination: a reloaded window replaces its rows there too.

Warehouses merge the report tables with ``delete-insert`` on the window start. dlt's Delta
tables have no such strategy (only ``upsert``, ``insert-only`` and ``cdc``), so on Delta:

- every report row gets a primary key, its window start plus its row number in the
  window's file (:data:`~tikpay_source.settings.ROW_NUMBER_COLUMN`);
- the table is merged with ``cdc``, whose ``destination_scope`` names the windows this
  load carries: rows of those windows are updated, inserted, or deleted when the new file
  has fewer, and rows of every other window are left alone (without the scope ``cdc``
  would delete every row not in the load);
- the tables are partitioned by window start, so a merge rewrites only its windows' files;
- ``report_jobs`` is upserted on ``job_id``. A Delta merge refuses two rows of one key in
  a load, so the run's rows are cut to the latest one per job (:func:`one_row_per_job`).

One load package is one Delta merge per table, repeated as a whole if it is loaded again
(after a crash, or from a pipeline with no state): the result is the same rows once.
The destination is known only while the resources run, so the hints are applied then: the
``report_jobs`` hints here, and a report table's with its batches (see
:class:`~tikpay_source.loading.writers.DeltaMerge`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import dlt
from dlt.sources import DltResource

from tikpay_source.loading.destinations import DELTA
from tikpay_source.loading.tables import LOADED_STATUS
from tikpay_source.settings import ROW_NUMBER_COLUMN, WINDOW_START_COLUMN

JOB_DELTA_HINTS: dict[str, Any] = {
    "table_format": DELTA,
    "write_disposition": {"disposition": "merge", "strategy": "upsert"},
}


def use_delta_for_jobs(jobs: DltResource) -> None:
    """Make ``report_jobs`` a Delta table upserted on ``job_id`` (before its first row is written)."""
    jobs.apply_hints(**JOB_DELTA_HINTS)


def window_scope(starts: Iterable[datetime]) -> str:
    """The ``destination_scope`` predicate: the target rows of these windows (a literal SQL list)."""
    listed = ", ".join(f"TIMESTAMP '{start.isoformat(sep=' ')}'" for start in sorted(set(starts)))
    return f"{{table}}.{WINDOW_START_COLUMN} IN ({listed})"


def report_delta_hints(starts: Iterable[datetime]) -> Any:
    """A report table's Delta hints for a load of the windows starting at ``starts``."""
    return dlt.mark.make_hints(
        table_format=DELTA,
        primary_key=[WINDOW_START_COLUMN, ROW_NUMBER_COLUMN],
        merge_key="",  # cdc on Delta takes the scope instead of a merge key
        write_disposition={
            "disposition": "merge",
            "strategy": "cdc",
            "destination_scope": window_scope(starts),
        },
        columns={
            WINDOW_START_COLUMN: {"partition": True},
            ROW_NUMBER_COLUMN: {"data_type": "bigint", "nullable": False},
        },
    )


def one_row_per_job(rows: Iterator[dict[str, Any] | None]) -> Iterator[dict[str, Any] | None]:
    """The ``report_jobs`` rows of a run with only the latest row of each job reaching the table.

    A row that hands a file over (``loaded``) goes through at once, since the table's
    resource reads the file then; any other row (submitted, failed, ...) is held until
    the run ends, and dropped if a later row of its job came first. ``None`` (dlt's
    "nothing yet") passes through.
    """
    held: dict[str, dict[str, Any]] = {}
    passed: set[str] = set()
    for row in rows:
        if row is None:
            yield None
            continue
        job_id = row["job_id"]
        if row.get("load_status") == LOADED_STATUS:
            held.pop(job_id, None)
            passed.add(job_id)
            yield row
        elif job_id not in passed:
            held[job_id] = row
    yield from held.values()
