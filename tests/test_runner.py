"""A run's steps: against the sandbox's answers the connector cannot use, what it tells through the
``tikpay`` logger, and, as unit tests, the runner alone against a fake API and a clock that never waits."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cli import cli_env, one_day_args, run_cli
from harness import Harness, assert_exact, daily

from tikpay_source.api.ledger import RequestLedger
from tikpay_source.api.models import FAILED, IN_PROGRESS, NO_DATA, ApiJob
from tikpay_source.api.polls import Clock
from tikpay_source.config import build_config
from tikpay_source.errors import SubmissionUncertain
from tikpay_source.files.fetching import ReportFetcher
from tikpay_source.loading.destinations import ELSEWHERE
from tikpay_source.loading.handover import FileHandover
from tikpay_source.planning.budget import RequestBudget
from tikpay_source.planning.state import RunState
from tikpay_source.runner import ReportJobRunner
from tikpay_source.sandbox import Fault, Sandbox
from tikpay_source.settings import (
    EXIT_OK,
    EXIT_WINDOWS_FAILED,
    MAX_SUBMIT_ATTEMPTS,
    MAX_UNUSABLE_ANSWERS,
    QUOTA_LIMIT,
)

MakeSandbox = Callable[..., Sandbox]
ONE_DAY = {"report_types": ["TRIPS"], "start_time": "2025-03-01", "end_time": "2025-03-02"}


def list_calls(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.api_requests if r["path"].startswith("/v1/report-jobs-list"))


def test_a_submission_answered_501_fails_the_run_and_its_window_is_tried_again(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """501 says the call is not supported: not a job that may exist, so no wait for the list; exit 4."""
    harness = Harness(sandbox, tmp_path)
    sandbox.inject(Fault("status", endpoint="submit", status=501))
    failed = harness.run(**ONE_DAY)

    assert failed.exit_code == EXIT_WINDOWS_FAILED and failed.windows_loaded == 0
    (error,) = failed.window_errors
    assert "HTTP 501" in error and "submitted again next run" in error
    assert harness.run(**ONE_DAY).exit_code == EXIT_OK
    assert_exact(harness, "TRIPS", daily("2025-03-01", 1))


@pytest.mark.parametrize(
    "fault, reason",
    [
        (Fault("odd_status", job_status="ARCHIVED"), "has an unknown status 'ARCHIVED'"),
        (Fault("no_link"), "is COMPLETE but has no downloadUrl"),
    ],
    ids=["unknown status", "complete without a link"],
)
def test_an_unusable_job_answer_is_reported_once_and_set_aside_after_a_few_polls(
    make_sandbox: MakeSandbox, tmp_path: Path, fault: Fault, reason: str
) -> None:
    sandbox = make_sandbox(complete_after_list_calls=0)
    sandbox.inject(fault)
    harness = Harness(sandbox, tmp_path)
    summary = harness.run(**ONE_DAY, max_wait=60)

    assert summary.exit_code == EXIT_WINDOWS_FAILED and summary.windows_loaded == 0
    (error,) = summary.window_errors  # once, not once per poll
    assert reason in error
    # bounded: the list before submitting (a fresh pipeline), then a few polls, not polls until max_wait
    assert list_calls(sandbox) == 1 + MAX_UNUSABLE_ANSWERS
    assert summary.pending and "the next run tries them again" in summary.lines()[-1]
    assert harness.query("SELECT count(*) FROM report_jobs") == [(1,)]


def test_progress_goes_through_the_tikpay_logger(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An orchestrator captures the run's steps like any library's log records."""
    caplog.set_level(logging.INFO, logger="tikpay")
    Harness(sandbox, tmp_path).run(**ONE_DAY)

    steps = [r.getMessage() for r in caplog.records if r.name == "tikpay"]
    assert any(
        step.startswith("submitted TRIPS 2025-03-01T00:00:00 to 2025-03-02T00:00:00 as job ")
        for step in steps
    )
    assert any(
        step.startswith("TRIPS 2025-03-01T00:00:00 to 2025-03-02T00:00:00: loaded 480 rows") for step in steps
    )


def test_the_script_shows_a_short_quota_wait(sandbox: Sandbox, tmp_path: Path) -> None:
    """The README's fault matrix promises "quota: told to wait" for a short Retry-After."""
    sandbox.inject(Fault("quota_exhausted", retry_after=1))
    args = one_day_args("TRIPS")
    result = run_cli(args, cli_env(sandbox, tmp_path), tmp_path)

    assert result.returncode == EXIT_OK, result.stderr
    assert "tikpay: quota: told to wait 1 s; waiting once" in result.stderr.splitlines()


# --- the runner on its own: a fake API at the client's boundary, a clock that never waits -------

DAYS = {"report_types": ["TRIPS"], "start_time": "2025-03-01", "end_time": "2025-03-05", "max_window": "P1D"}


class FakeApi:
    """The Data API as the runner sees it: every call spent through the run's budget, as the client does.

    A job is listed with its ``outcome`` as soon as it exists (``IN_PROGRESS`` keeps it running);
    ``others`` are jobs already in the account, and ``unclear`` submissions are accepted but
    answered without a job id.
    """

    def __init__(
        self, budget: RequestBudget, outcome: str = NO_DATA, others: tuple[dict, ...] = (), unclear: int = 0
    ) -> None:
        self.budget = budget
        self.outcome = outcome
        self.jobs: list[dict] = list(others)
        self.unclear = unclear
        self.calls: list[str] = []

    def submit(self, report_type: str, start: str, end: str, file_type: str) -> str:
        self.budget.spend("submit")
        self.calls.append("submit")
        job_id = f"job-{len(self.jobs) + 1}"
        self.jobs.append(
            {"jobId": job_id, "status": self.outcome, "reportType": report_type, "fileType": file_type,
             "startTime": start, "endTime": end, "timezone": "Australia/Sydney", "createdAt": start}
        )  # fmt: skip
        if self.unclear:
            self.unclear -= 1
            raise SubmissionUncertain("the answer was lost")
        return job_id

    def list_jobs(self) -> list[ApiJob]:
        self.budget.spend("list")
        self.calls.append("list")
        return [ApiJob.from_api(job) for job in self.jobs]


class FakeClock:
    def __init__(self) -> None:
        self.at = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.at += seconds


def one_run(
    tmp_path: Path, source_state: dict[str, Any], api_options: dict[str, Any] | None = None, **settings: Any
) -> tuple[ReportJobRunner, FakeApi, FakeClock]:
    """Run the runner once over ``source_state`` (kept between calls, as dlt keeps it) with fakes at its edges."""
    config = build_config(client_id="id", client_secret="secret", api_key="key", **{**DAYS, **settings})
    budget = RequestBudget(RequestLedger.local(tmp_path / "ledger", "key"))
    api, clock = FakeApi(budget, **(api_options or {})), FakeClock()
    runner = ReportJobRunner(
        config,
        RunState(source_state, config.file_type),
        FileHandover(),
        ("TRIPS",),
        api=api,
        budget=budget,
        fetcher=ReportFetcher(config.timezone.key, tmp_path, ELSEWHERE),
        clock=Clock(clock.now, clock.sleep),
    )
    list(runner.run())
    return runner, api, clock


def test_a_run_submits_what_its_plan_shows_and_spends_what_it_says(tmp_path: Path) -> None:
    """A fresh pipeline: the list first, one job, the list to confirm the zone, the rest, one poll."""
    source_state: dict[str, Any] = {}
    runner, api, _clock = one_run(tmp_path, source_state)

    plan = runner.budget.plan
    assert plan is not None and (plan.submissions, plan.requests) == (4, 7)
    assert api.calls == ["list", "submit", "list", "submit", "submit", "submit", "list"]
    assert (runner.outcome.submitted, runner.budget.spent) == (plan.submissions, plan.requests)
    assert runner.state.last_end("TRIPS") == datetime(2025, 3, 5) and not runner.state.entries


def test_a_small_budget_submits_what_fits_and_leaves_the_rest_owed(tmp_path: Path) -> None:
    runner, api, _clock = one_run(tmp_path, {}, max_requests=4)

    assert api.calls == ["list", "submit", "list"]  # no room to confirm the zone and submit after it
    assert runner.outcome.submitted == runner.budget.plan.submissions == 1  # type: ignore[union-attr]
    assert len(runner.state.owed(["TRIPS"])) == 3


def test_a_failed_job_is_submitted_again_until_its_attempts_are_spent(tmp_path: Path) -> None:
    source_state: dict[str, Any] = {}
    submissions = 0
    for _run in range(MAX_SUBMIT_ATTEMPTS + 1):
        _runner, api, _clock = one_run(tmp_path, source_state, {"outcome": FAILED}, end_time="2025-03-02")
        submissions += api.calls.count("submit")

    assert submissions == MAX_SUBMIT_ATTEMPTS
    (gave_up,) = RunState(source_state, "csv").gave_up()
    assert gave_up.attempts == MAX_SUBMIT_ATTEMPTS and "FAILED" in (gave_up.error or "")


def test_a_job_list_in_another_zone_stops_the_run_before_any_submission(tmp_path: Path) -> None:
    berlin = {"jobId": "old", "status": NO_DATA, "reportType": "TAPS", "fileType": "csv", "timezone": "Europe/Berlin",
              "startTime": "2025-01-01T00:00:00", "endTime": "2025-01-02T00:00:00"}  # fmt: skip
    runner, api, _clock = one_run(tmp_path, {}, {"others": (berlin,)})

    assert api.calls == ["list"]
    assert runner.outcome.stopped is not None and runner.outcome.stopped["kind"] == "config"
    assert "API reports the operator's timezone as Europe/Berlin" in runner.outcome.stopped["message"]


def test_an_unclear_submission_is_settled_by_the_next_list_without_submitting_again(tmp_path: Path) -> None:
    runner, api, _clock = one_run(tmp_path, {}, {"unclear": 1}, end_time="2025-03-02")

    assert api.calls == ["list", "submit", "list"] and len(api.jobs) == 1
    assert runner.state.last_end("TRIPS") == datetime(2025, 3, 2)  # the listed job was its job: loaded


def test_waiting_for_a_slow_job_ends_at_max_wait_and_leaves_it_in_flight(tmp_path: Path) -> None:
    source_state: dict[str, Any] = {}
    runner, api, clock = one_run(
        tmp_path,
        source_state,
        {"outcome": IN_PROGRESS},
        end_time="2025-03-02",
        max_wait=600,
        poll_interval=60,
    )

    assert 0 < sum(clock.sleeps) <= 600 and api.calls.count("submit") == 1
    assert [e.job_id for e in runner.state.in_flight(["TRIPS"])] == ["job-1"]
    assert runner.budget.spent == len(api.calls) < QUOTA_LIMIT  # polls back off: no poll every minute
