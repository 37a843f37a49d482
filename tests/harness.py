"""Running the real source against a real sandbox into a real warehouse, for end-to-end tests.

The warehouse is a DuckDB file unless a test runs inside ``loading_into(kind)`` (the
``warehouse_kind`` fixture does that): then the same test loads into PostgreSQL or into
dlt's filesystem destination (a local folder, an S3 API server) instead, and reads back from there.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import pyarrow.parquet as pq
from dlt.sources import DltSource
from warehouses import Warehouse, make_warehouse

from tikpay_source import RunSummary, run_summary, tikpay
from tikpay_source.progress import ConsoleRenderer, log
from tikpay_source.sandbox import DEMO_API_KEY, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox
from tikpay_source.settings import REPORT_TABLES

# (kind, its server: a PostgreSQL DSN or an S3Server) that a Harness built without an explicit
# warehouse loads into
_loading_into: ContextVar[tuple[str, Any]] = ContextVar("loading_into", default=("duckdb", None))


@contextlib.contextmanager
def loading_into(kind: str, service: Any = None) -> Iterator[None]:
    """Every Harness built inside loads into a fresh warehouse of ``kind`` (keyed by its ``tmp``)."""
    token = _loading_into.set((kind, service))
    try:
        yield
    finally:
        _loading_into.reset(token)


def current_warehouse(where: Path) -> Warehouse:
    """A warehouse of the kind in force, private to the directory ``where``."""
    kind, service = _loading_into.get()
    return make_warehouse(kind, where, service)


@dataclass
class Harness:
    """One pipeline (state in ``tmp``, or ``pipelines_dir``) loading from ``sandbox`` into ``warehouse``.

    Two harnesses given the same ``warehouse`` and different ``tmp`` are two machines
    loading into one shared warehouse.
    """

    sandbox: Sandbox
    tmp: Path
    name: str = "tikpay_test"
    output: io.StringIO = field(default_factory=io.StringIO)
    warehouse: Warehouse = None  # type: ignore[assignment]  # set in __post_init__

    def __post_init__(self) -> None:
        if self.warehouse is None:
            self.warehouse = current_warehouse(self.tmp)

    @property
    def db_path(self) -> Path:
        """The DuckDB file when the warehouse is DuckDB (kept for tests that open it directly)."""
        return self.tmp / "tikpay.duckdb"

    @property
    def pipelines_dir(self) -> Path:
        """This 'machine's' local dlt state: empty on a fresh machine."""
        return self.tmp / "pipelines"

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Source arguments pointing at the sandbox, quick to poll, with a ledger of their own.

        One job per window unless a test asks for ``max_window``: most tests are about
        windows, not about merging them into longer jobs.
        """
        return {
            "max_window": overrides.get("window", "P1D"),
            "base_url": self.sandbox.base_url,
            "token_url": self.sandbox.token_url,
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "api_key": DEMO_API_KEY,
            "timezone": self.sandbox.settings.timezone,
            "ledger_dir": str(self.tmp / "ledger"),
            "poll_interval": 0.05,
            "max_wait": 20,
            **overrides,
        }

    def pipeline(self) -> dlt.Pipeline:
        return dlt.pipeline(
            pipeline_name=self.name,
            pipelines_dir=str(self.pipelines_dir),
            destination=self.warehouse.destination(),
            dataset_name=self.warehouse.dataset,
        )

    def source(self, **overrides: Any) -> DltSource:
        """The real source with this harness's settings (and ``overrides``)."""
        return tikpay(**self.settings(**overrides))

    def run(self, **overrides: Any) -> RunSummary:
        return self.load(self.source(**overrides))

    def load(self, source: DltSource, **run_options: Any) -> RunSummary:
        """Run ``source`` (a selection or a clone, say) in this harness's pipeline; its summary."""
        pipeline = self.pipeline()
        with self.capturing_progress():
            pipeline.run(source, loader_file_format=self.warehouse.loader_file_format, **run_options)
        return run_summary(pipeline, source)

    @contextlib.contextmanager
    def capturing_progress(self) -> Iterator[None]:
        """What the ``tikpay`` logger says during a run, rendered as the script does, into ``output``."""
        renderer = ConsoleRenderer(self.output, live=False)
        level = log.level
        log.addHandler(renderer)
        log.setLevel("INFO")
        try:
            yield
        finally:
            log.removeHandler(renderer)
            log.setLevel(level)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a DuckDB-dialect query over the dataset's tables, run where the data lives."""
        return self.warehouse.query(sql)

    def table_exists(self, table: str) -> bool:
        return self.warehouse.table_exists(table)

    def rows_per_window(self, table: str) -> dict[str, int]:
        """Row count per window start (as the API's local time text) in a report table."""
        if not self.table_exists(table):
            return {}
        window = self.warehouse.window_text("_tikpay_window_start")
        return dict(self.query(f"SELECT {window}, count(*) FROM {table} GROUP BY 1"))

    def truth_per_window(self, report_type: str, windows: list[tuple[str, str]]) -> dict[str, int]:
        """The sandbox's exact row count for each window (windows with no rows left out)."""
        counts = {start: self.sandbox.count_rows(report_type, start, end) for start, end in windows}
        return {start: n for start, n in counts.items() if n}

    def submissions_for(self, report_type: str) -> list[tuple[str, str]]:
        return [(s["startTime"], s["endTime"]) for s in self.sandbox.submissions(report_type)]


def assert_exact(h: Harness, report_type: str, windows: list[tuple[str, str]]) -> None:
    """Every window's rows are in the table exactly once: counts equal the sandbox's ground truth."""
    assert h.rows_per_window(REPORT_TABLES[report_type]) == h.truth_per_window(report_type, windows)


def daily(start: str, days: int) -> list[tuple[str, str]]:
    """``days`` consecutive local-day windows from ``start`` (YYYY-MM-DD) as API time strings."""
    from datetime import date, timedelta

    first = date.fromisoformat(start)
    return [
        (
            (first + timedelta(d)).isoformat() + "T00:00:00",
            (first + timedelta(d + 1)).isoformat() + "T00:00:00",
        )
        for d in range(days)
    ]


def loaded_jobs(pipeline: dlt.Pipeline, table: str) -> list[Any]:
    """The jobs (dlt's ``LoadJobInfo``: file format, path) that loaded ``table`` in the last run."""
    return [
        job
        for package in pipeline.last_trace.last_load_info.load_packages
        for job in package.jobs["completed_jobs"]
        if job.job_file_info.table_name == table
    ]


def files_per_step(pipeline: dlt.Pipeline, table: str) -> tuple[set[str], set[str]]:
    """The formats of the files ``table`` had in the last run: written by extract, and loaded."""
    extracted = {
        name.rsplit(".", 1)[-1]
        for metrics in pipeline.last_trace.last_extract_info.metrics.values()
        for step in metrics
        for name in step["job_metrics"]
        if name.split(".")[0] == table
    }
    return extracted, {job.job_file_info.file_format for job in loaded_jobs(pipeline, table)}


def parquet_writers(pipeline: dlt.Pipeline, table: str) -> set[str]:
    """Who wrote the Parquet files ``table`` loaded in the last run: ``DuckDB`` or ``parquet-cpp-arrow`` (dlt)."""
    return {
        pq.ParquetFile(job.file_path).metadata.created_by.split(" version")[0]
        for job in loaded_jobs(pipeline, table)
        if job.job_file_info.file_format == "parquet"
    }
