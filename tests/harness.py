"""Running the real source against a real sandbox into a real DuckDB file, for end-to-end tests."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import duckdb

from tikpay_source import RunSummary, run_summary, tikpay
from tikpay_source.progress import Progress
from tikpay_source.sandbox import DEMO_API_KEY, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox
from tikpay_source.settings import DATASET_NAME


@dataclass
class Harness:
    """One pipeline (state in ``tmp``) loading from ``sandbox`` into ``tmp/tikpay.duckdb``."""

    sandbox: Sandbox
    tmp: Path
    name: str = "tikpay_test"
    output: io.StringIO = field(default_factory=io.StringIO)

    @property
    def db_path(self) -> Path:
        return self.tmp / "tikpay.duckdb"

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Source arguments pointing at the sandbox, quick to poll, with a ledger of their own."""
        return {
            "base_url": self.sandbox.base_url,
            "token_url": self.sandbox.token_url,
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "api_key": DEMO_API_KEY,
            "timezone": self.sandbox.settings.timezone,
            "ledger_dir": str(self.tmp / "ledger"),
            "poll_interval": 0.05,
            "max_wait": 20,
            "progress": Progress(stream=self.output, live=False),
            **overrides,
        }

    def pipeline(self) -> dlt.Pipeline:
        return dlt.pipeline(
            pipeline_name=self.name,
            pipelines_dir=str(self.tmp / "pipelines"),
            destination=dlt.destinations.duckdb(str(self.db_path)),
            dataset_name=DATASET_NAME,
        )

    def run(self, **overrides: Any) -> RunSummary:
        pipeline = self.pipeline()
        pipeline.run(tikpay(**self.settings(**overrides)))
        return run_summary(pipeline)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.db_path), read_only=True) as con:
            con.execute(f"SET search_path = '{DATASET_NAME}'")
            return con.execute(sql).fetchall()

    def table_exists(self, table: str) -> bool:
        if not self.db_path.exists():
            return False
        rows = self.query(f"SELECT count(*) FROM information_schema.tables WHERE table_name = '{table}'")
        return rows[0][0] > 0

    def rows_per_window(self, table: str) -> dict[str, int]:
        """Row count per window start (as the API's local time text) in a report table."""
        if not self.table_exists(table):
            return {}
        rows = self.query(
            f"SELECT strftime(_tikpay_window_start, '%Y-%m-%dT%H:%M:%S'), count(*) FROM {table} GROUP BY 1"
        )
        return dict(rows)

    def truth_per_window(self, report_type: str, windows: list[tuple[str, str]]) -> dict[str, int]:
        """The sandbox's exact row count for each window (windows with no rows left out)."""
        counts = {start: self.sandbox.count_rows(report_type, start, end) for start, end in windows}
        return {start: n for start, n in counts.items() if n}

    def submissions_for(self, report_type: str) -> list[tuple[str, str]]:
        return [(s["startTime"], s["endTime"]) for s in self.sandbox.submissions(report_type)]


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
