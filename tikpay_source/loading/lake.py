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
The destination is known only while the resources run, so the hints are applied then.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.exceptions import DltException
from dlt.sources import DltResource

from tikpay_source.errors import ConfigError
from tikpay_source.loading.tables import LOADED_STATUS
from tikpay_source.settings import DELTA_EXTRA, ROW_NUMBER_COLUMN, WINDOW_START_COLUMN

DELTA = "delta"
FILESYSTEM = "filesystem"
JOB_DELTA_HINTS: dict[str, Any] = {
    "table_format": DELTA,
    "write_disposition": {"disposition": "merge", "strategy": "upsert"},
}


def uses_delta(table_format: str) -> bool:
    """Whether this run writes Delta tables: the ``filesystem`` destination with ``table_format`` delta.

    Raises ConfigError (one line naming the extra) when Delta is due but deltalake is missing.
    """
    try:
        destination = dlt.current.pipeline().destination
    except DltException:  # iterated outside a pipeline: nothing is loaded
        return False
    if destination is None or destination.destination_name != FILESYSTEM or table_format != DELTA:
        return False
    if not deltalake_installed():
        raise ConfigError(
            f"table_format 'delta' needs the deltalake package: pip install -e {DELTA_EXTRA} "
            "(or table_format 'parquet' for plain, append-only files)"
        )
    return True


def deltalake_installed() -> bool:
    """Whether deltalake imports (checked apart, so the error above carries no ImportError context)."""
    try:
        importlib.import_module("deltalake")
    except ImportError:
        return False
    return True


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


class DeltaWindows:
    """The windows one run hands a report table, so each file's first batch carries the load's scope."""

    def __init__(self) -> None:
        self._starts: list[datetime] = []
        self._load_id: str | None = None

    def _this_load(self) -> list[datetime]:
        """The windows of the load being extracted (a source run again starts a new list)."""
        try:
            load_id = dlt.current.load_package_state()["load_id"]
        except DltException:
            load_id = None
        if load_id != self._load_id:
            self._starts, self._load_id = [], load_id
        return self._starts

    def batches(self, start: datetime, batches: Iterator[pa.RecordBatch]) -> Iterator[Any]:
        """``batches`` of the window at ``start``, numbered; the first one also sets the hints.

        dlt applies hints yielded with an item to the table's schema, which the load
        package keeps, so the package's merge knows every window it holds.
        """
        offset = 0
        for batch in batches:
            numbered = batch.append_column(
                pa.field(ROW_NUMBER_COLUMN, pa.int64(), nullable=False),
                pa.array(range(offset, offset + batch.num_rows), pa.int64()),
            )
            if offset == 0:  # a window is in the scope only once its rows are in the load
                starts = self._this_load()
                starts.append(start)
                yield dlt.mark.with_hints(numbered, report_delta_hints(starts))
            else:
                yield numbered
            offset += batch.num_rows


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
