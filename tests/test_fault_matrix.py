"""The fault matrix: every fault the sandbox can inject, its expected outcome, and exact rows afterwards.

The README's "Fault matrix" table mirrors these cases one for one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from harness import Harness, daily

from tikpay_source.sandbox import Fault, Sandbox
from tikpay_source.settings import EXIT_OK, EXIT_QUOTA_STOP, EXIT_WINDOWS_FAILED

MakeSandbox = Callable[..., Sandbox]
WINDOWS = daily("2025-03-01", 2)
RUN = {"report_types": ["TRIPS"], "start_time": "2025-03-01", "end_time": "2025-03-03"}


def loaded_exactly(h: Harness, windows: list[tuple[str, str]] = WINDOWS) -> bool:
    return h.rows_per_window("trips") == h.truth_per_window("TRIPS", windows)


def statuses(h: Harness, method: str, path_part: str) -> list[int]:
    return [r["status"] for r in h.sandbox.api_requests if r["method"] == method and path_part in r["path"]]


def download_statuses(h: Harness) -> list[int]:
    return [r["status"] for r in h.sandbox.download_requests]


@dataclass(frozen=True)
class Case:
    """One row of the matrix: a fault, what the run does about it, and the evidence in the sandbox's logs."""

    fault: Fault
    outcome: str
    evidence: Callable[[Harness], bool]


RECOVERED = [
    Case(
        Fault("status", endpoint="list", status=500),
        "list retried with backoff",
        lambda h: statuses(h, "GET", "report-jobs-list").count(500) == 1,
    ),
    Case(
        Fault("status", endpoint="list", status=503),
        "list retried with backoff",
        lambda h: statuses(h, "GET", "report-jobs-list").count(503) == 1,
    ),
    Case(
        Fault("status", endpoint="submit", status=500),
        "submission not repeated blindly: the next list shows no job, so the window is submitted again",
        lambda h: (
            statuses(h, "POST", "generate-report") == [500, 200, 200] and len(h.sandbox.submissions()) == 2
        ),
    ),
    Case(
        Fault("status", endpoint="submit", status=503),
        "as for 500",
        lambda h: (
            statuses(h, "POST", "generate-report") == [503, 200, 200] and len(h.sandbox.submissions()) == 2
        ),
    ),
    Case(
        Fault("status", endpoint="token", status=503),
        "token request retried (costs no quota)",
        lambda h: statuses(h, "POST", "oauth2/token") == [503, 200],
    ),
    Case(
        Fault("status", endpoint="download", status=500),
        "download retried (costs no quota)",
        lambda h: download_statuses(h).count(500) == 1 and download_statuses(h).count(200) == 2,
    ),
    Case(
        Fault("slow", endpoint="list", delay=1.0),
        "waited for",
        lambda h: 500 not in statuses(h, "GET", "list"),
    ),
    Case(
        Fault("slow", endpoint="download", delay=1.0), "waited for", lambda h: len(download_statuses(h)) == 2
    ),
    Case(
        Fault("drop", endpoint="download", after_bytes=2000),
        "connection dropped mid-file: downloaded again",
        lambda h: len(download_statuses(h)) == 3,
    ),
    Case(
        Fault("truncate", endpoint="download"),
        "truncated file rejected, downloaded again",
        lambda h: len(download_statuses(h)) == 3,
    ),
    Case(
        Fault("malformed_row", endpoint="download"),
        "malformed file rejected, downloaded again",
        lambda h: len(download_statuses(h)) == 3,
    ),
    Case(
        Fault("job_failed", report_type="TRIPS"),
        "window submitted again",
        lambda h: len(h.sandbox.submissions()) == 3,
    ),
    Case(
        Fault("quota_exhausted", endpoint="list", retry_after=1),
        "short Retry-After waited out once",
        lambda h: statuses(h, "GET", "report-jobs-list").count(429) == 1,
    ),
    Case(
        Fault("quota_exhausted", endpoint="submit", retry_after=1),
        "short Retry-After waited out once",
        lambda h: statuses(h, "POST", "generate-report").count(429) == 1,
    ),
]


@pytest.mark.parametrize(
    "case", RECOVERED, ids=lambda c: f"{c.fault.kind}-{c.fault.endpoint or c.fault.report_type}"
)
def test_recoverable_faults_end_with_every_row_loaded_once(
    sandbox: Sandbox, tmp_path: Path, case: Case
) -> None:
    h = Harness(sandbox, tmp_path)
    sandbox.inject(case.fault)
    summary = h.run(**RUN, max_retry_wait=5)

    assert summary.exit_code == EXIT_OK, summary.lines()
    assert loaded_exactly(h), case.outcome
    assert not summary.pending and summary.windows_loaded == 2
    assert case.evidence(h), (case.outcome, h.sandbox.api_requests, h.sandbox.download_requests)


def test_a_token_expired_mid_run_is_refreshed_once_and_the_call_retried(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The sandbox revokes every token right after the run's first list call; the next call meets a 401."""
    h = Harness(sandbox, tmp_path)

    def revoke_after_first_list() -> None:
        deadline = time.monotonic() + 30
        while not statuses(h, "GET", "report-jobs-list") and time.monotonic() < deadline:
            time.sleep(0.001)
        sandbox.inject(Fault("expire_token"))

    revoker = threading.Thread(target=revoke_after_first_list)
    revoker.start()
    summary = h.run(**RUN, poll_interval=0.3)
    revoker.join()

    assert summary.exit_code == EXIT_OK and loaded_exactly(h)
    assert statuses(h, "POST", "oauth2/token") == [200, 200]
    assert 401 in statuses(h, "POST", "generate-report") + statuses(h, "GET", "report-jobs-list")


def test_a_dropped_download_is_retried_and_never_doubles_rows(sandbox: Sandbox, tmp_path: Path) -> None:
    h = Harness(sandbox, tmp_path)
    sandbox.inject(Fault("drop", endpoint="download", after_bytes=5000, times=2))
    summary = h.run(**RUN)
    assert summary.exit_code == EXIT_OK and loaded_exactly(h)
    assert len(sandbox.download_requests) == 4  # two broken, then one good per window
    assert h.query("SELECT count(*) FROM trips")[0][0] == sum(h.truth_per_window("TRIPS", WINDOWS).values())


def test_a_refused_link_is_signed_afresh_by_the_next_list(sandbox: Sandbox, tmp_path: Path) -> None:
    """An expired link answers 403 (as ``expire_links`` makes it): the next list call hands out a fresh one."""
    h = Harness(sandbox, tmp_path)
    sandbox.inject(Fault("status", endpoint="download", status=403))
    summary = h.run(**RUN)

    assert summary.exit_code == EXIT_OK and loaded_exactly(h)
    assert download_statuses(h) == [403, 200, 200]
    assert len(sandbox.submissions()) == 2


def test_a_download_refused_twice_leaves_the_window_for_the_next_run(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    h = Harness(sandbox, tmp_path)
    h.run(**RUN, max_wait=0)
    sandbox.inject(Fault("status", endpoint="download", status=403, times=None))
    stuck = h.run(**RUN)
    assert stuck.exit_code == EXIT_WINDOWS_FAILED
    assert len(stuck.window_errors) == 2 and all("was refused (HTTP 403)" in e for e in stuck.window_errors)
    sandbox.clear_faults()
    recovered = h.run(**RUN)
    assert recovered.exit_code == EXIT_OK and recovered.submitted == 0 and loaded_exactly(h)


def test_no_data_loads_zero_rows_and_completes_the_window(sandbox: Sandbox, tmp_path: Path) -> None:
    h = Harness(sandbox, tmp_path)
    sandbox.inject(Fault("no_data", report_type="TRIPS"))
    summary = h.run(**RUN)
    assert summary.exit_code == EXIT_OK and summary.windows_loaded == 2
    assert h.rows_per_window("trips") == {WINDOWS[1][0]: sandbox.count_rows("TRIPS", *WINDOWS[1])}


def test_a_long_retry_after_stops_cleanly_keeps_what_loaded_and_blocks_the_key(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    h = Harness(sandbox, tmp_path)
    h.run(report_types=["TRIPS"], start_time="2025-03-01", end_time="2025-03-02")
    sandbox.inject(Fault("quota_exhausted", retry_after=3600, times=None))
    summary = h.run(**{**RUN, "end_time": "2025-03-04"})

    assert summary.exit_code == EXIT_QUOTA_STOP
    last = summary.lines()[-1]
    assert last.startswith("stopped for quota:") and "run again after" in last
    retry_at = datetime.fromisoformat(summary.stopped["retry_at"])
    assert 3500 < (retry_at - datetime.now(timezone.utc)).total_seconds() <= 3600
    assert loaded_exactly(h, daily("2025-03-01", 1))  # what loaded before is kept
    requests_seen = len(sandbox.api_requests)

    again = h.run(**{**RUN, "end_time": "2025-03-04"})
    assert again.exit_code == EXIT_QUOTA_STOP
    assert len(sandbox.api_requests) == requests_seen  # never knock on a key told to wait


def test_the_real_quota_running_out_mid_run_is_a_quota_stop_not_a_crash(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    h = Harness(make_sandbox(quota_limit=4, complete_after_list_calls=0), tmp_path)
    summary = h.run(**{**RUN, "end_time": "2025-03-06"})  # 5 windows: the 4th request is refused

    assert summary.exit_code == EXIT_QUOTA_STOP
    assert summary.requests <= 5
    loaded = h.rows_per_window("trips")
    assert loaded == {
        start: n
        for start, n in h.truth_per_window("TRIPS", daily("2025-03-01", 5)).items()
        if start in loaded
    }


def test_max_requests_caps_the_run_and_leaves_the_rest_for_the_next(sandbox: Sandbox, tmp_path: Path) -> None:
    h = Harness(sandbox, tmp_path)
    # 1 list + 1 submission + 1 list: on a new account the timezone is confirmed before a second job,
    # and 4 requests leave no room for the confirmation and another submission after it
    first = h.run(**{**RUN, "end_time": "2025-03-06"}, max_requests=4)
    assert first.requests <= 4 and first.submitted == 1 and first.exit_code == EXIT_OK
    second = h.run(**{**RUN, "end_time": "2025-03-06"})
    assert second.submitted == 4
    assert loaded_exactly(h, daily("2025-03-01", 5))
    assert len(sandbox.submissions()) == 5


def test_max_requests_is_a_hard_cap_even_through_retries(sandbox: Sandbox, tmp_path: Path) -> None:
    h = Harness(sandbox, tmp_path)
    sandbox.inject(Fault("status", endpoint="list", status=500, times=None))
    summary = h.run(**RUN, max_requests=2)
    api_calls = [r for r in sandbox.api_requests if "/v1/" in r["path"]]
    assert summary.requests == len(api_calls) == 2
