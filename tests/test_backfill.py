"""Backfills in days: owed windows merged into longer jobs, exact rows where spans and daily windows meet,
no window before it is over, the timezone confirmed before data, and one quota for processes sharing a key."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import time_machine
from cli import SCRIPT, cli_env
from harness import Harness
from warehouses import Warehouse

from tikpay_source import plan_lines, plan_next_run
from tikpay_source.sandbox import Fault, Sandbox
from tikpay_source.settings import EXIT_BAD_INPUT, EXIT_OK, EXIT_QUOTA_STOP, REPORT_TABLES, REPORT_TYPES

MakeSandbox = Callable[..., Sandbox]
SYDNEY = ZoneInfo("Australia/Sydney")
# the sandbox as it is by default: a job is done two seconds after it was submitted
SANDBOX_DEFAULT_PACE = {"complete_after_list_calls": 0, "complete_after_seconds": 2.0}


def assert_every_span_exact(h: Harness, report_type: str, first: str, last: str) -> None:
    """Each job's rows are in the table exactly once, and together they cover ``[first, last)`` with no gap."""
    table = REPORT_TABLES[report_type]
    start, end = (h.warehouse.window_text(c) for c in ("_tikpay_window_start", "_tikpay_window_end"))
    loaded = {(s, e): n for s, e, n in h.query(f"SELECT {start}, {end}, count(*) FROM {table} GROUP BY 1, 2")}
    assert loaded == {span: h.sandbox.count_rows(report_type, *span) for span in loaded}
    assert sum(loaded.values()) == h.sandbox.count_rows(report_type, first, last)


def test_the_readme_backfill_loads_every_row_in_its_first_run(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    """``--start 2025-01-01`` with the default max_window, against the sandbox at its own pace.

    Each type's probe goes first; once its file is in, the rest of the range is planned in
    spans sized from it and submitted in the same run (issue 23): one run, within 20 requests.
    """
    with time_machine.travel(datetime(2026, 11, 30, 2, 30, tzinfo=SYDNEY), tick=True) as traveller:
        sandbox = make_sandbox(rows_per_hour=1, **SANDBOX_DEFAULT_PACE)
        harness = Harness(sandbox, tmp_path)
        settings = {"start_time": "2025-01-01", "max_window": "P366D", "poll_interval": 0.5, "max_wait": 30}
        runs = []
        for _day in range(3):
            runs.append(harness.run(**settings))
            if "all caught up" in runs[-1].lines()[-1]:
                break
            traveller.shift(timedelta(days=1))

    (first,) = runs
    assert first.windows_loaded > 4 and all(first.rows.get(t) for t in REPORT_TABLES.values())
    assert "all caught up" in first.lines()[-1], first.lines()
    assert first.requests <= 20 and not first.later
    end = f"{(datetime(2026, 11, 30) + timedelta(days=len(runs) - 1)).date()}T00:00:00"
    for report_type in REPORT_TYPES:
        assert_every_span_exact(harness, report_type, "2025-01-01T00:00:00", end)
        spans = harness.submissions_for(report_type)
        assert len(spans) <= 4 and spans[0] == ("2025-01-01T00:00:00", "2025-01-08T00:00:00")  # a probe first


def test_a_reload_whose_span_differs_replaces_exactly_and_meets_daily_windows(
    sandbox: Sandbox, tmp_path: Path, warehouse: Warehouse
) -> None:
    """A second machine with no state plans longer spans over what the first loaded; then daily runs follow."""
    trips = {"report_types": ["TRIPS"], "start_time": "2025-03-01", "max_window": "P31D"}
    first = Harness(sandbox, tmp_path / "first", name="one", warehouse=warehouse)
    first.run(**trips, end_time="2025-03-05")
    assert first.submissions_for("TRIPS") == [("2025-03-01T00:00:00", "2025-03-05T00:00:00")]
    sandbox.clock.advance(8 * 86_400)  # the first machine's job has expired: nothing to adopt

    second = Harness(sandbox, tmp_path / "second", name="two", warehouse=warehouse)
    second.run(**trips, end_time="2025-03-20")  # a probe of seven days replaces the first machine's four
    second.run(**trips, end_time="2025-03-20")  # then one span for the rest of the block
    for day in (21, 22):
        second.run(**trips, end_time=f"2025-03-{day}")
    assert second.submissions_for("TRIPS")[1:] == [
        ("2025-03-01T00:00:00", "2025-03-08T00:00:00"),
        ("2025-03-08T00:00:00", "2025-03-20T00:00:00"),
        ("2025-03-20T00:00:00", "2025-03-21T00:00:00"),
        ("2025-03-21T00:00:00", "2025-03-22T00:00:00"),
    ]
    assert_every_span_exact(second, "TRIPS", "2025-03-01T00:00:00", "2025-03-22T00:00:00")


def test_a_failed_span_is_submitted_again_as_the_same_span(sandbox: Sandbox, tmp_path: Path) -> None:
    harness = Harness(sandbox, tmp_path)
    trips = {
        "report_types": ["TRIPS"],
        "start_time": "2025-03-01",
        "end_time": "2025-03-31",
        "max_window": "P31D",
    }
    harness.run(**(trips | {"end_time": "2025-03-08"}))  # the probe, which covers the range so far
    sandbox.inject(Fault("job_failed", report_type="TRIPS"))
    summary = harness.run(**trips)

    assert summary.exit_code == EXIT_OK and summary.windows_loaded == 1
    assert harness.submissions_for("TRIPS")[1:] == [("2025-03-08T00:00:00", "2025-03-31T00:00:00")] * 2
    assert_every_span_exact(harness, "TRIPS", "2025-03-01T00:00:00", "2025-03-31T00:00:00")


def test_no_day_is_requested_before_it_is_over_plus_lag_across_a_midnight_change(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    """Santiago puts its clocks forward at midnight: 2025-09-06 ends at 04:00 UTC; with a lag of an hour it is
    asked for at 05:00 UTC, not at 04:00 UTC as wall-clock arithmetic (00:00 + 1 h = 01:00 local) would."""
    settings = {"report_types": ["TAPS"], "start_time": "2025-09-05", "timezone": "America/Santiago"}
    with time_machine.travel(datetime(2025, 9, 7, 4, 59, tzinfo=timezone.utc), tick=False):
        sandbox = make_sandbox(timezone="America/Santiago")
        harness = Harness(sandbox, tmp_path)
        harness.run(**settings, max_wait=0)
    assert harness.submissions_for("TAPS") == [("2025-09-05T00:00:00", "2025-09-06T00:00:00")]
    with time_machine.travel(datetime(2025, 9, 7, 5, 0, 1, tzinfo=timezone.utc), tick=False):
        harness.run(**settings, max_wait=0)
    assert harness.submissions_for("TAPS")[-1] == ("2025-09-06T00:00:00", "2025-09-07T00:00:00")


def test_an_end_time_in_the_future_is_capped_with_one_line(sandbox: Sandbox, tmp_path: Path) -> None:
    harness = Harness(sandbox, tmp_path)
    source = harness.source(report_types=["TRIPS"], start_time="2026-11-20", end_time="2030-01-01")
    plan = plan_next_run(harness.pipeline(), source)

    (note,) = plan.notes
    assert note.startswith("end_time 2030-01-01T00:00:00 is later than the last window that is over")
    assert note in plan_lines(plan)
    assert max(w.end for w in plan.windows) <= datetime.now(SYDNEY).replace(tzinfo=None)


def test_the_timezone_is_confirmed_after_one_job_on_an_account_with_no_jobs(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    harness = Harness(sandbox, tmp_path)
    summary = harness.run(
        report_types=["TRIPS"], start_time="2025-03-01", end_time="2025-03-06", timezone="Europe/London"
    )

    assert summary.exit_code == EXIT_BAD_INPUT and "Australia/Sydney" in summary.lines()[-1]
    assert len(sandbox.submissions()) == 1  # not five


def test_two_processes_sharing_an_api_key_never_spend_more_than_the_quota(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    ledger = tmp_path / "shared-ledger"
    args = [
        "--report-types",
        "TRIPS",
        "--start",
        "2025-01-01",
        "--end",
        "2025-03-01",
        "--poll-interval",
        "0.1",
    ]
    runs = []
    for name in ("scheduled", "manual"):
        env = cli_env(sandbox, tmp_path / name, SOURCES__TIKPAY__LEDGER_DIR=str(ledger))
        (tmp_path / name).mkdir()
        runs.append(
            subprocess.Popen(
                [sys.executable, str(SCRIPT), *args, "--max-wait", "5"],
                env=env,
                cwd=tmp_path / name,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = [(run.wait(timeout=120), run.communicate()) for run in runs]

    assert all(code in (EXIT_OK, EXIT_QUOTA_STOP) for code, _ in results), results
    assert sandbox.quota_used() <= 20
    assert not [r for r in sandbox.api_requests if r["status"] == 429]


def test_the_last_request_waits_until_the_jobs_should_be_done(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    """Jobs take a second; once that is learnt, a run with room for one poll only waits for it, and loads."""
    sandbox = make_sandbox(complete_after_list_calls=0, complete_after_seconds=1.0)
    harness = Harness(sandbox, tmp_path)
    trips = {"report_types": ["TRIPS"], "start_time": "2025-03-01", "poll_interval": 0.05}
    harness.run(**trips, end_time="2025-03-02")  # learns how long a TRIPS job takes
    durations = harness.pipeline().state["sources"]["tikpay"]["resources"]["trips"]["job_seconds"]
    assert durations and min(durations) >= 1.0

    tight = harness.run(**trips, end_time="2025-03-03", max_requests=2)  # one submission, one poll

    assert (tight.submitted, tight.requests, tight.windows_loaded) == (1, 2, 1)
    assert_every_span_exact(harness, "TRIPS", "2025-03-01T00:00:00", "2025-03-03T00:00:00")
