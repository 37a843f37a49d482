"""The window book: what has been loaded, what is in flight, and what to submit next.

Pure book-keeping over the dict that dlt keeps as the ``report_jobs`` resource state,
so it is committed to the destination together with the rows it describes:

* ``last_end[report_type]``: the end of the last window loaded with all windows before it;
* ``windows[key]``: each window past ``last_end`` that has been submitted, loaded out of
  order, or has failed, with its job id and attempt count.

Nothing here makes a request; :mod:`tikpay_source.runner` does, and tells the book
what it learnt.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tikpay_source.client import ApiJob
from tikpay_source.config import TikpayConfig
from tikpay_source.settings import JOBS_TABLE, MAX_SUBMIT_ATTEMPTS
from tikpay_source.windows import Window, format_local, parse_local, split_windows

# Status of a window in the book.
SUBMITTED = "submitted"  # a job is known and alive (IN_PROGRESS or COMPLETE, not loaded yet)
UNCERTAIN = "uncertain"  # a submission may have reached the API; the next list decides
RETRY = "retry"  # the last job FAILED, expired or was never created: submit again
LOADED = "loaded"  # rows (or NO_DATA) loaded; kept only until last_end passes it
GAVE_UP = "gave_up"  # failed MAX_SUBMIT_ATTEMPTS times: reported every run until retried
FINAL = (LOADED, GAVE_UP)


@dataclass
class Entry:
    """A window past ``last_end`` and what is known of its job."""

    window: Window
    status: str
    job_id: str | None = None
    file_type: str = "csv"
    attempts: int = 0
    error: str | None = None

    def to_state(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "job_id": self.job_id,
            "file_type": self.file_type,
            "attempts": self.attempts,
            "error": self.error,
        }


def saved_state(pipeline: Any) -> dict[str, Any]:
    """The ``report_jobs`` resource state a pipeline holds (empty if the source never ran)."""
    sources = pipeline.state.get("sources", {})
    return sources.get("tikpay", {}).get("resources", {}).get(JOBS_TABLE, {})


def window_from_key(key: str) -> Window:
    """Inverse of :attr:`Window.key`."""
    report_type, start, end = key.split("|")
    return Window(parse_local(start), parse_local(end), report_type)


def job_window(job: ApiJob) -> Window | None:
    """The window an API job covers, or None if its times are not local date-times."""
    try:
        return Window(parse_local(job.start_time), parse_local(job.end_time), job.report_type)
    except Exception:
        return None


class WindowBook:
    """Reads and updates the connector's resource state; every method is pure book-keeping."""

    def __init__(self, state: dict[str, Any], config: TikpayConfig) -> None:
        self._state = state
        self._config = config
        self._last_end: dict[str, str] = state.setdefault("last_end", {})
        raw: dict[str, dict[str, Any]] = state.setdefault("windows", {})
        self.entries: dict[str, Entry] = {
            key: Entry(window_from_key(key), **value) for key, value in raw.items()
        }

    # --- persistence --------------------------------------------------------------------

    def save(self) -> None:
        """Write the entries back into the state dict (dlt commits it with the load).

        Windows never submitted are left out: the next run plans them again from its own
        configuration (report types, window size, file type may have changed).
        """
        self._state["windows"] = {
            key: e.to_state()
            for key, e in sorted(self.entries.items())
            if not (e.status == RETRY and e.attempts == 0)  # never submitted: planned afresh next run
        }

    def last_end(self, report_type: str) -> datetime | None:
        value = self._last_end.get(report_type)
        return parse_local(value) if value else None

    # --- planning -----------------------------------------------------------------------

    def plan(self, now_local: datetime) -> list[Window]:
        """Windows that have never been submitted, from each type's ``last_end`` to the end bound.

        A report type seen for the first time is anchored at ``start_time`` (or one window
        before the end bound), and its ``last_end`` starts there.

        Windows already in the book are skipped; any gap between them (after a change of
        ``window``) is planned afresh, so coverage stays contiguous.
        """
        end = self._config.end_bound(now_local)
        planned: list[Window] = []
        for report_type in self._config.report_types:
            cursor = self.last_end(report_type)
            if cursor is None:  # a report type's first run anchors where its history begins
                cursor = self._config.first_start(now_local)
                self._last_end[report_type] = format_local(cursor)
            known = sorted(e.window for e in self.entries.values() if e.window.report_type == report_type)
            for window in known:
                if window.start > cursor:
                    planned.extend(
                        split_windows(report_type, cursor, min(window.start, end), self._config.window)
                    )
                cursor = max(cursor, window.end)
            planned.extend(split_windows(report_type, cursor, end, self._config.window))
        return sorted(planned, key=lambda w: (w.start, w.report_type))

    def add_planned(self, windows: Iterable[Window]) -> None:
        """Put planned windows in the book as needing a submission."""
        for window in windows:
            self.entries.setdefault(window.key, Entry(window, RETRY, file_type=self._config.file_type))

    def to_submit(self) -> list[Entry]:
        """Entries waiting for a submission, oldest window first across report types."""
        waiting = [e for e in self.entries.values() if e.status == RETRY]
        return sorted(waiting, key=lambda e: (e.window.start, e.window.report_type))

    def in_flight(self) -> list[Entry]:
        """Entries whose job the API is still working on (or whose submission is unknown)."""
        return [e for e in self.entries.values() if e.status in (SUBMITTED, UNCERTAIN)]

    def gave_up(self) -> list[Entry]:
        return sorted((e for e in self.entries.values() if e.status == GAVE_UP), key=lambda e: e.window)

    def retry_gave_up(self) -> None:
        """Give windows that exhausted their attempts a fresh set (``--retry-failed``)."""
        for entry in self.gave_up():
            entry.status, entry.attempts, entry.error = RETRY, 0, None

    # --- what the API said ----------------------------------------------------------------

    def reconcile(self, jobs: Iterable[ApiJob]) -> None:
        """Match the job list against the book.

        Jobs already submitted for a window waiting for submission (same report type,
        start, end and file type, not FAILED) are adopted instead of submitted again:
        this is what makes a crash after a submission harmless. Known jobs missing from
        the list have expired before being loaded, and their windows are submitted again.
        """
        by_id: dict[str, ApiJob] = {}
        live_by_window: dict[tuple[str, str], ApiJob] = {}
        for job in jobs:
            by_id[job.job_id] = job
            window = job_window(job)
            if window is None or job.status == "FAILED":
                continue
            slot = (window.key, job.file_type)
            current = live_by_window.get(slot)
            if current is None or _rank(job) > _rank(current):
                live_by_window[slot] = job
        for entry in self.entries.values():
            if entry.status == SUBMITTED and entry.job_id not in by_id:
                self.fail(entry, f"job {entry.job_id} expired before its file was loaded")
            if entry.status in (UNCERTAIN, RETRY):
                adopted = live_by_window.get((entry.window.key, entry.file_type))
                if adopted is not None:
                    entry.status, entry.job_id, entry.error = SUBMITTED, adopted.job_id, None
                elif entry.status == UNCERTAIN:
                    self.fail(entry, "a submission met a server error and never reached the job list")

    def submitted(self, entry: Entry, job_id: str | None) -> None:
        """Record a submission: its job id, or None when the answer was lost (uncertain)."""
        entry.attempts += 1
        entry.job_id = job_id
        entry.status = SUBMITTED if job_id else UNCERTAIN

    def fail(self, entry: Entry, reason: str) -> None:
        """A job FAILED or expired: submit again while attempts remain, else give up."""
        entry.error = reason
        entry.job_id = None
        entry.status = RETRY if entry.attempts < MAX_SUBMIT_ATTEMPTS else GAVE_UP

    def loaded(self, entry: Entry) -> None:
        """The window's rows are in this load; advance ``last_end`` over every loaded prefix."""
        entry.status, entry.error = LOADED, None
        self._advance(entry.window.report_type)

    def _advance(self, report_type: str) -> None:
        mine = sorted(
            (e for e in self.entries.values() if e.window.report_type == report_type), key=lambda e: e.window
        )
        cursor = self.last_end(report_type)
        for entry in mine:
            if entry.status != LOADED or entry.window.start != cursor:
                break
            cursor = entry.window.end
            del self.entries[entry.window.key]
        if cursor is not None:
            self._last_end[report_type] = format_local(cursor)

    def entry_for_job(self, job_id: str) -> Entry | None:
        return next((e for e in self.entries.values() if e.job_id == job_id), None)

    def pending_jobs(self) -> Iterator[Entry]:
        """Entries the next run must finish (for the summary)."""
        return (e for e in self.entries.values() if e.status not in FINAL)


def _rank(job: ApiJob) -> tuple[int, str]:
    """Prefer a COMPLETE job, then one in progress, then NO_DATA; newest on ties."""
    order = {"COMPLETE": 3, "IN_PROGRESS": 2, "NO_DATA": 1}
    return order.get(job.status, 0), job.created_at or ""
