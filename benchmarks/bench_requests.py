"""Requests spent per window loaded, against the sandbox, next to the lower bound.

    python benchmarks/bench_requests.py            # --days 30 --backfill-days 90

(a) a daily incremental run of all four report types for 30 days, and (b) a 90-day
backfill of all four, run once a day until caught up. Days pass with time-machine, so
the sandbox's quota window, the connector's request ledger and its "now" all move
together; jobs finish before the first poll (``complete_after_list_calls=0``), as they
do when ``poll_interval`` is longer than a job takes.

The lower bound is one submission per window plus one job-list call per run that has
jobs to collect: the fewest requests any client could spend with those completion times.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dlt
import time_machine

from tikpay_source import run_summary, tikpay
from tikpay_source.sandbox import DEMO_API_KEY, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox, SandboxSettings

SYDNEY = ZoneInfo("Australia/Sydney")
FIRST_DAY = datetime(2025, 3, 1, 2, 30, tzinfo=SYDNEY)  # a scheduled run at 02:30 local time
DAILY_TARGET = 1.25


@dataclass
class Tally:
    """Requests and windows over a sequence of runs."""

    runs: int = 0
    requests: int = 0
    windows: int = 0
    collecting_runs: int = 0

    def add(self, requests: int, windows: int) -> None:
        self.runs += 1
        self.requests += requests
        self.windows += windows
        self.collecting_runs += int(windows > 0)

    @property
    def per_window(self) -> float:
        return self.requests / self.windows if self.windows else 0.0

    @property
    def lower_bound(self) -> float:
        return (self.windows + self.collecting_runs) / self.windows if self.windows else 0.0


def simulate(days: int, backfill_days: int, scratch: Path) -> tuple[Tally, Tally]:
    """Run once a day for ``days`` days; return (first run, every later run)."""
    first, later = Tally(), Tally()
    with (
        time_machine.travel(FIRST_DAY, tick=True) as traveller,
        Sandbox(SandboxSettings(complete_after_list_calls=0)) as sandbox,
    ):
        start = (FIRST_DAY - timedelta(days=backfill_days)).date().isoformat()
        pipeline = dlt.pipeline(
            pipeline_name=f"bench_{backfill_days}",
            pipelines_dir=str(scratch / "pipelines"),
            destination=dlt.destinations.duckdb(str(scratch / f"bench_{backfill_days}.duckdb")),
            dataset_name="tikpay_data",
        )
        for day in range(days):
            pipeline.run(
                tikpay(
                    base_url=sandbox.base_url,
                    token_url=sandbox.token_url,
                    client_id=DEMO_CLIENT_ID,
                    client_secret=DEMO_CLIENT_SECRET,
                    api_key=DEMO_API_KEY,
                    start_time=start,
                    ledger_dir=str(scratch / "ledger"),
                    poll_interval=0.2,
                    max_wait=30,
                )
            )
            summary = run_summary(pipeline)
            (first if day == 0 else later).add(summary.requests, summary.windows_loaded)
            traveller.shift(timedelta(days=1))
            if backfill_days > 1 and not summary.pending and summary.windows_loaded <= 4 and day > 0:
                break  # caught up
    return first, later


def report(label: str, tally: Tally) -> None:
    print(
        f"{label:<34} runs {tally.runs:>3}  windows {tally.windows:>4}  requests {tally.requests:>4}  "
        f"per window {tally.per_window:.3f}  lower bound {tally.lower_bound:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="days of the daily incremental case")
    parser.add_argument("--backfill-days", type=int, default=90, help="days the backfill case starts back")
    opts = parser.parse_args()
    if opts.days < 2 or opts.backfill_days < 2:
        parser.error("--days and --backfill-days must each be at least 2")
    with tempfile.TemporaryDirectory(prefix="tikpay-bench-") as scratch:
        daily_first, daily = simulate(days=opts.days, backfill_days=1, scratch=Path(scratch) / "daily")
        backfill_first, backfill_rest = simulate(
            days=opts.backfill_days // 2 + 10,
            backfill_days=opts.backfill_days,
            scratch=Path(scratch) / "backfill",
        )
    backfill = Tally(
        backfill_first.runs + backfill_rest.runs,
        backfill_first.requests + backfill_rest.requests,
        backfill_first.windows + backfill_rest.windows,
        backfill_first.collecting_runs + backfill_rest.collecting_runs,
    )
    print("requests spent per window loaded (sandbox; jobs finish before the first poll)")
    report("(a) daily, first run", daily_first)
    report("(a) daily, every later run", daily)
    report(f"(b) {opts.backfill_days}-day backfill, all runs", backfill)
    verdict = "met" if daily.per_window <= DAILY_TARGET else "MISSED"
    print(
        f"daily incremental run: {daily.per_window:.3f} requests per window (target <= {DAILY_TARGET}): {verdict}"
    )


if __name__ == "__main__":
    main()
