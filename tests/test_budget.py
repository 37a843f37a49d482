"""The request budget: the adoption check, the submissions that fit, and ``--plan`` making no request."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cli import cli_env, run_cli
from harness import Harness

from tikpay_source import ConfigError, plan_next_run
from tikpay_source.api.ledger import RequestLedger
from tikpay_source.config import build_config
from tikpay_source.planning.budget import RunPlan, needs_adoption_check, plan_run
from tikpay_source.planning.explain import plan_lines
from tikpay_source.planning.state import RunState
from tikpay_source.planning.windows import Window
from tikpay_source.sandbox import Sandbox

DAY = timedelta(days=1)


def windows(count: int) -> tuple[Window, ...]:
    first = datetime(2025, 1, 1)
    return tuple(Window(first + i * DAY, first + (i + 1) * DAY, "TRIPS") for i in range(count))


@pytest.mark.parametrize(
    "committed, ledger_last, needed",
    [(None, None, True), (None, "r1", True), ("r1", None, True), ("r1", "r2", True), ("r2", "r2", False)],
)
def test_the_job_list_is_read_first_unless_the_ledger_proves_no_run_was_interrupted(
    committed: str | None, ledger_last: str | None, needed: bool
) -> None:
    assert needs_adoption_check(committed, ledger_last) is needed


def plan(count: int, *, adoption: bool, budget: int = 20, in_flight: int = 0, wait: bool = True) -> RunPlan:
    return RunPlan(windows(count), in_flight, adoption, budget, budget, wait, DAY)


def test_a_daily_run_costs_one_submission_per_window_and_one_list_call() -> None:
    daily = plan(4, adoption=False)
    assert (daily.submissions, daily.requests) == (4, 5)
    assert plan(4, adoption=True).requests == 6


def test_submissions_never_exceed_what_the_budget_leaves_beside_the_list_calls() -> None:
    backfill = plan(100, adoption=True, budget=20)
    assert backfill.submissions == 18 and backfill.requests == 20
    assert plan(100, adoption=False, budget=3).submissions == 2
    assert plan(100, adoption=True, budget=1).submissions == 0
    assert plan(5, adoption=False, wait=False).requests == 5  # max_wait 0: collected by the next run


def test_a_long_backfill_says_how_many_days_of_quota_it_needs() -> None:
    backfill = plan(360, adoption=True)
    assert backfill.days_of_quota == 20
    assert any("need about 20 day(s) of quota" in line for line in plan_lines(backfill))
    assert plan_lines(plan(0, adoption=False))[-2] == "this run: no request needed"


def test_a_probe_and_the_jobs_its_file_sizes_fit_in_one_days_run() -> None:
    """The README's backfill of one type: a probe, then two spans of max_window, all in the first run."""
    rest = (Window(datetime(2025, 1, 8), datetime(2026, 12, 2), "TRIPS"),)
    probe = RunPlan(windows(1), 0, True, 20, 20, True, DAY, held_back=rest, later_span=timedelta(days=366))
    assert (probe.jobs_in_all, probe.days_of_quota) == (3, 1)
    lines = plan_lines(probe)
    assert any("then the rest in jobs sized from the probes' files" in line for line in lines)
    assert any("need about 1 day(s) of quota, 1 daily run(s)" in line for line in lines)


def test_plan_flag_prints_the_plan_without_any_api_request(sandbox: Sandbox, tmp_path: Path) -> None:
    args = ["--plan", "--start", "2025-01-01", "--end", "2025-04-01", "--report-types", "TRIPS,TAPS"]
    result = run_cli(args, cli_env(sandbox, tmp_path), tmp_path)

    assert result.returncode == 0, result.stderr
    assert "TAPS: 90 job(s) from 2025-01-01T00:00:00 to 2025-04-01T00:00:00" in result.stdout
    # a fresh pipeline confirms the timezone after its first job: 17 jobs, 3 list calls
    assert "this run: 17 submission(s)" in result.stdout and "need about 10 day(s) of quota" in result.stdout
    assert sandbox.api_requests == []


# --- the plan is the run: --plan's numbers are what the run then spends -------------------------

PLAN_EQUALS_RUN = {
    "a fresh pipeline (adoption list first)": ([], {"end_time": "2025-03-04"}),
    "jobs in flight from an earlier run": (
        [{"end_time": "2025-03-03", "max_wait": 0}],
        {"end_time": "2025-03-06"},
    ),
    "a budget smaller than the windows owed": ([], {"end_time": "2025-03-11", "max_requests": 4}),
    "max_wait 0: submit only": ([], {"end_time": "2025-03-04", "max_wait": 0}),
    "in flight, and more owed than a day's quota": (
        [{"end_time": "2025-03-03", "max_wait": 0}],
        {"end_time": "2025-04-10"},
    ),
}


@pytest.mark.parametrize("earlier, run", PLAN_EQUALS_RUN.values(), ids=PLAN_EQUALS_RUN.keys())
def test_plan_equals_run(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path, earlier: list[dict[str, Any]], run: dict[str, Any]
) -> None:
    """``plan_next_run`` (what --plan prints) predicts the run's submissions and requests exactly."""
    harness = Harness(make_sandbox(complete_after_list_calls=0), tmp_path)
    settings = {"report_types": ["TRIPS"], "start_time": "2025-03-01"}
    for overrides in earlier:
        harness.run(**settings, **overrides)

    source = harness.source(**settings, **run)
    plan = plan_next_run(harness.pipeline(), source)
    summary = harness.load(source)

    assert (summary.submitted, summary.requests) == (plan.submissions, plan.requests)
    assert summary.submitted + summary.adopted <= len(plan.windows)


def test_plan_equals_run_when_the_first_list_already_shows_the_timezone(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """The run submits what the plan shows, even when the call to confirm the timezone turns out unneeded."""
    sandbox = make_sandbox(complete_after_list_calls=0)
    Harness(sandbox, tmp_path / "other").run(
        report_types=["TAPS"], start_time="2025-03-01", end_time="2025-03-02"
    )
    harness = Harness(sandbox, tmp_path / "new")  # a new pipeline on the key: its state knows no timezone
    source = harness.source(
        report_types=["TRIPS"], start_time="2025-03-01", end_time="2025-03-11", max_requests=6
    )
    plan = plan_next_run(harness.pipeline(), source)
    summary = harness.load(source)

    assert plan.confirms_timezone and plan.submissions == 3
    assert summary.submitted == plan.submissions
    assert summary.requests == plan.requests - 1  # the adoption list showed the zone: no call to confirm it


def test_planning_changes_no_state_and_returns_the_spans_a_run_adds(tmp_path: Path) -> None:
    source_state: dict[str, Any] = {}
    state = RunState(source_state, "csv")
    before = copy.deepcopy(source_state)
    config = build_config(
        client_id="id", client_secret="secret", api_key="key", report_types=["TRIPS"],
        start_time="2025-03-01", max_window="P1D",
    )  # fmt: skip
    ledger = RequestLedger.local(tmp_path / "ledger", "key")
    now = datetime(2025, 3, 5, 12, tzinfo=timezone.utc)  # 23:00 in Sydney: four days are over

    plan = plan_run(state, config, ledger, ("TRIPS",), now=now)
    assert source_state == before
    assert [w.start.day for w in plan.new_spans] == [1, 2, 3, 4] and plan.windows == plan.new_spans
    assert plan.starts == (("TRIPS", datetime(2025, 3, 1), datetime(2025, 3, 1)),)

    state.add_owed(plan.new_spans, plan.starts)
    assert tuple(entry.window for entry in state.owed()) == plan.windows
    assert state.last_end("TRIPS") == datetime(2025, 3, 1)
    again = plan_run(state, config, ledger, ("TRIPS",), now=now)
    assert (again.new_spans, again.starts, again.windows) == ((), (), plan.windows)


def test_plan_stops_where_the_run_would_on_a_timezone_the_api_contradicts(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    harness = Harness(sandbox, tmp_path)
    harness.run(report_types=["TRIPS"], start_time="2025-03-01", end_time="2025-03-02")  # learns Sydney
    source = harness.source(report_types=["TRIPS"], timezone="Europe/Berlin")

    requests = len(sandbox.api_requests)
    with pytest.raises(ConfigError, match="API reports the operator's timezone as Australia/Sydney"):
        plan_next_run(harness.pipeline(), source)
    assert len(sandbox.api_requests) == requests


def test_a_plan_with_nothing_owed_says_when_the_next_window_is_over(tmp_path: Path) -> None:
    """A fresh pipeline whose first window is not over yet is told when it will be, not "everything is loaded"."""
    config = build_config(
        client_id="id", client_secret="secret", api_key="key", report_types=["TRIPS"], start_time="2025-03-05"
    )
    now = datetime(2025, 3, 5, 12, tzinfo=timezone.utc)  # 23:00 on the 5th in Sydney
    plan = plan_run(
        RunState({}, "csv"), config, RequestLedger.local(tmp_path / "ledger", "key"), ("TRIPS",), now=now
    )

    assert plan.windows == ()
    assert plan.nothing_owed() == (
        "nothing to load yet: the next window (TRIPS 2025-03-05T00:00:00 to 2025-03-06T00:00:00) "
        "is over at 2025-03-06 01:00 AEDT, lag included"
    )
    assert any(plan.nothing_owed() in line for line in plan_lines(plan))
    bounded = build_config(client_id="id", client_secret="secret", api_key="key", report_types=["TRIPS"],
                           start_time="2025-03-01", end_time="2025-03-02")  # fmt: skip
    state = RunState({"resources": {"trips": {"last_end": "2025-03-02T00:00:00"}}}, "csv")
    done = plan_run(state, bounded, RequestLedger.local(tmp_path / "ledger", "key"), ("TRIPS",), now=now)
    assert done.nothing_owed() == "nothing new to load: every window up to end_time is loaded"
