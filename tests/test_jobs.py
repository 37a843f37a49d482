"""The window book: planning from state, adopting live jobs, advancing last_end only over a loaded prefix."""

from __future__ import annotations

from datetime import datetime

from tikpay_source.client import ApiJob
from tikpay_source.config import TikpayConfig, build_config
from tikpay_source.jobs import GAVE_UP, LOADED, RETRY, SUBMITTED, WindowBook

NOW = datetime(2025, 3, 5, 12, 0)


def config(**overrides: object) -> TikpayConfig:
    settings = {"client_id": "id", "client_secret": "secret", "api_key": "key", "environment": "prod-au1"}
    return build_config(**{**settings, "report_types": ["TRIPS"], "start_time": "2025-03-01", **overrides})


def api_job(job_id: str, start: str, end: str, status: str = "IN_PROGRESS", file_type: str = "csv") -> ApiJob:
    return ApiJob.from_api(
        {"jobId": job_id, "status": status, "reportType": "TRIPS", "fileType": file_type,
         "startTime": f"{start}T00:00:00", "endTime": f"{end}T00:00:00", "createdAt": "2025-03-05T10:00:00"}
    )  # fmt: skip


def test_a_first_run_anchors_at_start_time_and_plans_up_to_the_last_complete_window() -> None:
    state: dict = {}
    book = WindowBook(state, config())
    planned = book.plan(NOW)
    assert [w.start.day for w in planned] == [1, 2, 3, 4]  # the 5th is not over yet
    assert state["last_end"] == {"TRIPS": "2025-03-01T00:00:00"}


def test_live_jobs_for_waiting_windows_are_adopted_and_failed_ones_are_not() -> None:
    book = WindowBook({}, config())
    book.add_planned(book.plan(NOW))
    book.reconcile(
        [
            api_job("A", "2025-03-01", "2025-03-02", "COMPLETE"),
            api_job("B", "2025-03-02", "2025-03-03", "FAILED"),
            api_job("C", "2025-03-03", "2025-03-04", "IN_PROGRESS", file_type="xml"),  # another file type
        ]
    )
    by_day = {e.window.start.day: e for e in book.entries.values()}
    assert (by_day[1].status, by_day[1].job_id) == (SUBMITTED, "A")
    assert by_day[2].status == RETRY and by_day[3].status == RETRY and by_day[4].status == RETRY


def test_last_end_advances_only_over_a_contiguous_loaded_prefix() -> None:
    state: dict = {}
    book = WindowBook(state, config())
    book.add_planned(book.plan(NOW))
    first, second, third, _ = sorted(book.entries.values(), key=lambda e: e.window)
    book.loaded(second)  # out of order: day 1 is still missing
    assert state["last_end"]["TRIPS"] == "2025-03-01T00:00:00" and second.status == LOADED
    book.loaded(first)
    assert state["last_end"]["TRIPS"] == "2025-03-03T00:00:00"
    assert third.window.key in book.entries and first.window.key not in book.entries
    book.save()
    # days 3 and 4 were never submitted: the next run plans them afresh from its own configuration
    assert [w.start.day for w in WindowBook(state, config()).plan(NOW)] == [3, 4]


def test_a_known_job_missing_from_the_list_expired_and_its_window_is_submitted_again() -> None:
    book = WindowBook({}, config(end_time="2025-03-02"))
    book.add_planned(book.plan(NOW))
    (entry,) = book.entries.values()
    book.submitted(entry, "A")
    book.reconcile([])
    assert entry.status == RETRY and "expired" in (entry.error or "")


def test_a_window_gives_up_after_three_attempts_and_can_be_retried() -> None:
    book = WindowBook({}, config(end_time="2025-03-02"))
    book.add_planned(book.plan(NOW))
    (entry,) = book.entries.values()
    for attempt in range(3):
        book.submitted(entry, f"job-{attempt}")
        book.fail(entry, "FAILED at Tikpay")
    assert entry.status == GAVE_UP and book.gave_up() == [entry]
    book.retry_gave_up()
    assert entry.status == RETRY and entry.attempts == 0


def test_state_survives_a_round_trip() -> None:
    state: dict = {}
    book = WindowBook(state, config())
    book.add_planned(book.plan(NOW))
    book.submitted(book.to_submit()[0], "A")
    book.save()
    again = WindowBook(state, config())
    assert {k: (e.status, e.job_id) for k, e in again.entries.items()} == {
        k: (e.status, e.job_id) for k, e in book.entries.items() if e.job_id
    }
    assert len(again.entries) == 1  # windows never submitted are planned afresh from the next run's config
    assert len(again.plan(NOW)) == 3
