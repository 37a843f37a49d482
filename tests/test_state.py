"""The run state: planning from it, adopting live jobs, advancing last_end only over a loaded prefix."""

from __future__ import annotations

from datetime import datetime, timedelta

from tikpay_source.api.models import ApiJob
from tikpay_source.config import TikpayConfig, build_config
from tikpay_source.planning.state import GAVE_UP, LOADED, OWED, SUBMITTED, RunState
from tikpay_source.planning.windows import Window, owed_spans

NOW = datetime(2025, 3, 5, 12, 0)


def config(**overrides: object) -> TikpayConfig:
    settings = {"client_id": "id", "client_secret": "secret", "api_key": "key", "environment": "prod-au1"}
    return build_config(**{**settings, "report_types": ["TRIPS"], "start_time": "2025-03-01", **overrides})


def plan(state: RunState, cfg: TikpayConfig) -> list[Window]:
    """One job per window from start_time to the end of the last day over at NOW (or end_time)."""
    assert cfg.start_time is not None
    grid = state.grid("TRIPS", cfg.window, cfg.start_time)
    end = cfg.end_time or datetime(NOW.year, NOW.month, NOW.day)
    cursor = state.last_end("TRIPS") or cfg.start_time
    spans = owed_spans("TRIPS", state.known_windows("TRIPS"), cursor, end, grid, cfg.window, probe=False)
    state.add_owed(spans, [("TRIPS", cfg.start_time, grid.anchor)])
    return spans


def api_job(job_id: str, start: str, end: str, status: str = "IN_PROGRESS", file_type: str = "csv") -> ApiJob:
    return ApiJob.from_api(
        {"jobId": job_id, "status": status, "reportType": "TRIPS", "fileType": file_type,
         "startTime": f"{start}T00:00:00", "endTime": f"{end}T00:00:00", "createdAt": "2025-03-05T10:00:00"}
    )  # fmt: skip


def test_a_first_run_anchors_at_start_time_and_plans_up_to_the_last_complete_window() -> None:
    state: dict = {}
    planned = plan(RunState(state, "csv"), config())
    assert [w.start.day for w in planned] == [1, 2, 3, 4]  # the 5th is not over yet
    assert state["resources"]["trips"]["last_end"] == "2025-03-01T00:00:00"
    assert state["resources"]["trips"]["anchor"] == "2025-03-01T00:00:00"


def test_live_jobs_for_waiting_windows_are_adopted_and_failed_ones_are_not() -> None:
    book = RunState({}, "csv")
    plan(book, config())
    book.reconcile(
        [
            api_job("A", "2025-03-01", "2025-03-02", "COMPLETE"),
            api_job("B", "2025-03-02", "2025-03-03", "FAILED"),
            api_job("C", "2025-03-03", "2025-03-04", "IN_PROGRESS", file_type="xml"),  # another file type
        ]
    )
    by_day = {e.window.start.day: e for e in book.entries.values()}
    assert (by_day[1].status, by_day[1].job_id) == (SUBMITTED, "A")
    assert by_day[2].status == OWED and by_day[3].status == OWED and by_day[4].status == OWED


def test_last_end_advances_only_over_a_contiguous_loaded_prefix() -> None:
    state: dict = {}
    book = RunState(state, "csv")
    plan(book, config())
    first, second, third, _ = sorted(book.entries.values(), key=lambda e: e.window)
    book.loaded(second)  # out of order: day 1 is still missing
    assert state["resources"]["trips"]["last_end"] == "2025-03-01T00:00:00" and second.status == LOADED
    book.loaded(first)
    assert state["resources"]["trips"]["last_end"] == "2025-03-03T00:00:00"
    assert third.window.key in book.entries and first.window.key not in book.entries
    book.finish("run", {})
    # days 3 and 4 were never submitted: the next run plans them afresh from its own configuration
    assert [w.start.day for w in plan(RunState(state, "csv"), config())] == [3, 4]


def test_the_state_says_which_windows_it_loaded_rows_of_below_last_end_or_out_of_order() -> None:
    book = RunState({}, "csv")
    plan(book, config())
    first, second, third, fourth = sorted(book.entries.values(), key=lambda e: e.window)
    assert not any(book.has_loaded(e.window) for e in (first, second, third, fourth))
    book.loaded(first)
    book.loaded(third)  # out of order
    assert book.has_loaded(first.window) and book.has_loaded(third.window)
    assert not book.has_loaded(second.window) and not book.has_loaded(fourth.window)
    straddling = Window(third.window.start + timedelta(hours=12), fourth.window.end, "TRIPS")
    assert book.has_loaded(straddling)  # overlaps day 3
    assert not book.has_loaded(Window(third.window.start, third.window.end, "TAPS"))  # another table


def test_a_known_job_missing_from_the_list_expired_and_its_window_is_submitted_again() -> None:
    book = RunState({}, "csv")
    plan(book, config(end_time="2025-03-02"))
    (entry,) = book.entries.values()
    book.submitted(entry, "A")
    book.reconcile([])
    assert entry.status == OWED and "expired" in (entry.error or "")


def test_a_window_gives_up_after_three_attempts_and_can_be_retried() -> None:
    book = RunState({}, "csv")
    plan(book, config(end_time="2025-03-02"))
    (entry,) = book.entries.values()
    for attempt in range(3):
        book.submitted(entry, f"job-{attempt}")
        book.failed(entry, "FAILED at Tikpay")
    assert entry.status == GAVE_UP and book.gave_up() == [entry]
    book.retry_given_up()
    assert entry.status == OWED and entry.attempts == 0


def test_state_survives_a_round_trip() -> None:
    state: dict = {}
    book = RunState(state, "csv")
    plan(book, config())
    book.submitted(book.owed()[0], "A")
    book.finish("run", {})
    again = RunState(state, "csv")
    assert {k: (e.status, e.job_id) for k, e in again.entries.items()} == {
        k: (e.status, e.job_id) for k, e in book.entries.items() if e.job_id
    }
    assert len(again.entries) == 1  # windows never submitted are planned afresh from the next run's config
    assert len(plan(again, config())) == 3


def test_state_of_the_first_layout_is_moved_to_each_table() -> None:
    """Before each table had a resource, report_jobs' state held every type's progress."""
    key = "TRIPS|2025-03-04T00:00:00|2025-03-05T00:00:00"
    window = {"status": "submitted", "job_id": "A", "file_type": "csv", "attempts": 1, "error": None}
    source_state: dict = {
        "resources": {"report_jobs": {"last_end": {"TRIPS": "2025-03-04T00:00:00"}, "windows": {key: window}}}
    }
    state = RunState(source_state, "csv")
    assert state.in_flight()[0].job_id == "A" and state.last_end("TRIPS") == datetime(2025, 3, 4)
    assert source_state["resources"]["trips"] == {"last_end": "2025-03-04T00:00:00", "windows": {key: window}}
    assert source_state["resources"]["report_jobs"] == {}


def test_a_live_job_for_the_first_part_of_an_owed_span_is_adopted_and_the_rest_stays_owed() -> None:
    """A run killed after submitting [01-01, 03-01) is followed by one that plans [01-01, 03-02): no resubmission."""
    book = RunState({}, "csv")
    grid = book.grid("TRIPS", timedelta(days=1), datetime(2025, 1, 1))
    (span,) = owed_spans(
        "TRIPS", [], datetime(2025, 1, 1), datetime(2025, 3, 2), grid, timedelta(days=366), probe=False
    )
    book.add_owed([span])
    (adopted,) = book.reconcile([api_job("A", "2025-01-01", "2025-03-01", "IN_PROGRESS")])

    assert (adopted.window.start, adopted.window.end, adopted.job_id) == (
        span.start,
        datetime(2025, 3, 1),
        "A",
    )
    (rest,) = book.owed()
    assert (rest.window.start, rest.window.end) == (datetime(2025, 3, 1), datetime(2025, 3, 2))


def test_an_empty_probe_makes_the_next_probe_longer_until_a_file_says_how_large_files_are() -> None:
    book = RunState({}, "csv")
    empty = Window(datetime(2025, 1, 1), datetime(2025, 1, 8), "TRIPS")
    assert book.probe_days("TRIPS", 7) == 7
    book.observe_empty(empty, 7, 366)
    book.observe_empty(empty, 7, 366)
    assert book.probe_days("TRIPS", 7) == 112
    book.observe_file(empty, 7_000)
    book.observe_empty(empty, 7, 366)  # sizes are known now: nothing changes
    assert (book.probe_days("TRIPS", 7), book.bytes_per_day("TRIPS")) == (112, 1000.0)


def test_a_live_job_replaces_an_entry_whose_job_failed_or_that_gave_up() -> None:
    """A run resubmitted a FAILED window and died uncommitted: the next run adopts that job, submits nothing."""
    window = {"status": "submitted", "job_id": "A", "file_type": "csv", "attempts": 1, "error": None}
    gave_up = {"status": GAVE_UP, "job_id": "C", "file_type": "csv", "attempts": 3, "error": "job C FAILED"}
    first, second = (
        "TRIPS|2025-03-01T00:00:00|2025-03-02T00:00:00",
        "TRIPS|2025-03-02T00:00:00|2025-03-03T00:00:00",
    )
    book = RunState({"resources": {"trips": {"windows": {first: window, second: gave_up}}}}, "csv")
    jobs = [
        api_job("A", "2025-03-01", "2025-03-02", "FAILED"),
        api_job("B", "2025-03-01", "2025-03-02", "COMPLETE"),
        api_job("D", "2025-03-02", "2025-03-03", "IN_PROGRESS"),
    ]

    adopted = book.reconcile(jobs)
    assert sorted(entry.job_id for entry in adopted) == ["B", "D"]
    assert [(e.job_id, e.status) for e in book.in_flight()] == [("B", SUBMITTED), ("D", SUBMITTED)]
    assert book.reconcile(jobs) == []  # adopted once: a job of its own that is live is kept


def test_a_submission_the_job_list_shows_never_happened_is_no_attempt() -> None:
    """500, FAILED, 500: one job FAILED, so the window is owed with one attempt spent, not given up."""
    book = RunState({}, "csv")
    window = Window(datetime(2025, 3, 1), datetime(2025, 3, 2), "TRIPS")
    book.add_owed([window])
    (entry,) = book.owed()
    book.submission_unclear(entry)  # a 500: the next list decides
    book.reconcile([])
    assert (entry.status, entry.attempts) == (OWED, 0)
    book.submitted(entry, "A")
    book.failed(entry, "job A FAILED at Tikpay")
    book.submission_unclear(entry)
    book.reconcile([api_job("A", "2025-03-01", "2025-03-02", "FAILED")])
    assert (entry.status, entry.attempts) == (OWED, 1)
