"""A run's steps against answers the connector cannot use, and what it tells through the ``tikpay`` logger."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from cli import cli_env, one_day_args, run_cli
from harness import Harness, assert_exact, daily

from tikpay_source.sandbox import Fault, Sandbox
from tikpay_source.settings import EXIT_OK, EXIT_WINDOWS_FAILED, MAX_UNUSABLE_ANSWERS

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
