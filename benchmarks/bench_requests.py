"""Requests and days of quota the connector spends, against the sandbox, next to the lower bound.

    python benchmarks/bench_requests.py        # --days 30 --backfill-days 90 --since 2025-01-01

(a) a daily incremental run of all four report types for ``--days`` days; (b) a backfill
of all four from ``--backfill-days`` ago, and (c) the README's backfill from ``--since``,
each run once a day with the default settings (``max_window`` P366D) until caught up.
Days pass with time-machine, so the sandbox's quota window, the connector's request
ledger and its "now" all move together; jobs finish before the first poll, as they do
when a job takes less time than the poll waits.

Lower bounds, the fewest requests any client could spend: (a) one submission per window
plus one list call per run that has jobs to collect; (b, c) one job per report type per
``max_window`` of the backfill plus one list call, and the days of quota those take at
20 requests a day.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dlt
import time_machine

from tikpay_source import run_summary, tikpay
from tikpay_source.sandbox import DEMO_API_KEY, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox, SandboxSettings
from tikpay_source.settings import DEFAULT_MAX_WINDOW, QUOTA_LIMIT, REPORT_TYPES

SYDNEY = ZoneInfo("Australia/Sydney")
DAILY_TARGET = 1.25
MAX_WINDOW_DAYS = int(DEFAULT_MAX_WINDOW.strip("PD"))


@dataclass
class Tally:
    """Requests, jobs and rows over a sequence of runs."""

    runs: int = 0
    requests: int = 0
    jobs: int = 0
    collecting_runs: int = 0
    first_run_rows: int = 0
    per_run: list[int] = field(default_factory=list)

    def add(self, requests: int, jobs: int, rows: int) -> None:
        if not self.runs:
            self.first_run_rows = rows
        self.runs += 1
        self.requests += requests
        self.jobs += jobs
        self.collecting_runs += int(jobs > 0)
        self.per_run.append(requests)

    @property
    def per_job(self) -> float:
        return self.requests / self.jobs if self.jobs else 0.0

    @property
    def days_of_quota(self) -> int:
        """Runs that spent requests, one a day."""
        return sum(1 for spent in self.per_run if spent)


def simulate(
    first_day: datetime, since: date, days: int, scratch: Path, *, until_caught_up: bool
) -> list[Tally]:
    """Run once a day from ``first_day`` for ``days`` days (or until caught up); a tally per run."""
    runs: list[Tally] = []
    with (
        time_machine.travel(first_day, tick=True) as traveller,
        Sandbox(SandboxSettings(complete_after_list_calls=0, complete_after_seconds=0.0)) as sandbox,
    ):
        pipeline = dlt.pipeline(
            pipeline_name="bench_requests",
            pipelines_dir=str(scratch / "pipelines"),
            destination=dlt.destinations.duckdb(str(scratch / "bench.duckdb")),
            dataset_name="tikpay_data",
        )
        for _day in range(days):
            source = tikpay(
                base_url=sandbox.base_url,
                token_url=sandbox.token_url,
                client_id=DEMO_CLIENT_ID,
                client_secret=DEMO_CLIENT_SECRET,
                api_key=DEMO_API_KEY,
                start_time=since.isoformat(),
                ledger_dir=str(scratch / "ledger"),
                poll_interval=0.2,
                max_wait=30,
            )
            pipeline.run(source)
            summary = run_summary(pipeline, source)
            tally = Tally()
            tally.add(summary.requests, summary.windows_loaded, sum(summary.rows.values()))
            runs.append(tally)
            traveller.shift(timedelta(days=1))
            if until_caught_up and "all caught up" in summary.lines()[-1]:
                break
    return runs


def total(runs: list[Tally]) -> Tally:
    whole = Tally()
    for run in runs:
        whole.add(run.requests, run.jobs, run.first_run_rows)
    whole.first_run_rows = runs[0].first_run_rows if runs else 0
    return whole


def report_daily(label: str, tally: Tally) -> None:
    bound = (tally.jobs + tally.collecting_runs) / tally.jobs if tally.jobs else 0.0
    print(
        f"{label:<34} runs {tally.runs:>3}  jobs {tally.jobs:>4}  requests {tally.requests:>4}  "
        f"per job {tally.per_job:.3f}  lower bound {bound:.3f}"
    )


def report_backfill(label: str, tally: Tally, backfill_days: int) -> None:
    fewest_jobs = len(REPORT_TYPES) * math.ceil(backfill_days / MAX_WINDOW_DAYS)
    fewest_requests = fewest_jobs + 1
    print(
        f"{label:<34} runs {tally.runs:>3}  jobs {tally.jobs:>4}  requests {tally.requests:>4} "
        f"(lower bound {fewest_requests})  days of quota {tally.days_of_quota} "
        f"(lower bound {math.ceil(fewest_requests / QUOTA_LIMIT)})  rows loaded by the first run {tally.first_run_rows:,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="days of the daily incremental case")
    parser.add_argument("--backfill-days", type=int, default=90, help="days the backfill case starts back")
    parser.add_argument("--since", default="2025-01-01", help="where the README's backfill starts")
    opts = parser.parse_args()
    if opts.days < 2 or opts.backfill_days < 2:
        parser.error("--days and --backfill-days must each be at least 2")
    today = datetime(2026, 11, 30, 2, 30, tzinfo=SYDNEY)  # a scheduled run at 02:30 local time
    since = date.fromisoformat(opts.since)
    with tempfile.TemporaryDirectory(prefix="tikpay-bench-") as scratch:
        yesterday = (today - timedelta(days=1)).date()
        daily = simulate(today, yesterday, opts.days, Path(scratch) / "daily", until_caught_up=False)
        back = (today - timedelta(days=opts.backfill_days)).date()
        backfill = simulate(today, back, 10, Path(scratch) / "backfill", until_caught_up=True)
        readme = simulate(today, since, 10, Path(scratch) / "readme", until_caught_up=True)
    print("requests spent (sandbox; jobs finish before the first poll)")
    report_daily("(a) daily, first run", daily[0])
    report_daily("(a) daily, every later run", total(daily[1:]))
    report_backfill(f"(b) {opts.backfill_days}-day backfill", total(backfill), opts.backfill_days)
    readme_days = (today.date() - since).days
    report_backfill(f"(c) backfill from {since.isoformat()}", total(readme), readme_days)
    later = total(daily[1:])
    verdict = "met" if later.per_job <= DAILY_TARGET else "MISSED"
    print(
        f"daily incremental run: {later.per_job:.3f} requests per window (target <= {DAILY_TARGET}): {verdict}"
    )


if __name__ == "__main__":
    main()
