"""One window's entry in the connector's state: its statuses, its fields, and how jobs match it.

The state's layout as a whole is :mod:`tikpay_source.planning.state`'s; this is the
layout of one entry (``resources.<table>.windows[key]``) and the pure rules
:class:`~tikpay_source.planning.state.RunState` uses to match the job list against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tikpay_source.api.models import COMPLETE, FAILED, IN_PROGRESS, NO_DATA, ApiJob
from tikpay_source.errors import ConfigError
from tikpay_source.planning.windows import Window, parse_local

# Status of a window, as stored in the state.
OWED = "retry"  # no live job: submit (again); stored as "retry" since the first release
SUBMITTED = "submitted"  # a job is known and the API is working on it
UNCERTAIN = "uncertain"  # a submission may have reached the API; the next list decides
COMPLETE_NOT_LOADED = "complete"  # the job is COMPLETE, its file not loaded yet
LOADED = "loaded"  # rows (or NO_DATA) loaded; kept only until last_end passes it
GAVE_UP = "gave_up"  # failed MAX_SUBMIT_ATTEMPTS times: reported every run until retried

LIVE = (SUBMITTED, UNCERTAIN, COMPLETE_NOT_LOADED)
# entries whose job a live job of the same window replaces when their own job is lost
SUPERSEDED = (SUBMITTED, COMPLETE_NOT_LOADED, GAVE_UP)


@dataclass
class Entry:
    """A window past ``last_end`` and what is known of its job. Changed only by :class:`RunState`."""

    window: Window
    status: str
    job_id: str | None = None
    file_type: str = "csv"
    attempts: int = 0
    error: str | None = None
    refused_job: str | None = None
    """A job whose file stayed unreadable: never adopted again for this window."""
    refused_digest: str | None = None
    """The SHA-256 of that file, when it was the same bytes at every download."""

    def to_state(self) -> dict[str, Any]:
        kept = {
            "status": self.status,
            "job_id": self.job_id,
            "file_type": self.file_type,
            "attempts": self.attempts,
            "error": self.error,
        }
        refused = {"refused_job": self.refused_job, "refused_digest": self.refused_digest}
        return kept | {key: value for key, value in refused.items() if value}


def window_from_key(key: str) -> Window:
    """Inverse of :attr:`Window.key`."""
    report_type, start, end = key.split("|")
    return Window(parse_local(start), parse_local(end), report_type)


def job_window(job: ApiJob) -> Window | None:
    """The window an API job covers, or None if its times are not local date-times."""
    try:
        return Window(parse_local(job.start_time), parse_local(job.end_time), job.report_type)
    except ConfigError:
        return None


def earlier_part(entry: Entry, same_start: list[tuple[Window, ApiJob]]) -> tuple[Window, ApiJob] | None:
    """The live job with the span's start that covers the longest part of it, if any."""
    inside = [(w, job) for w, job in same_start if w.end < entry.window.end]
    return max(inside, key=lambda pair: (pair[0].end, rank(pair[1])), default=None)


def lost(job: ApiJob | None) -> bool:
    """Whether an entry's own job can no longer load its window: FAILED, or gone from the list."""
    return job is None or job.status == FAILED


def rank(job: ApiJob) -> tuple[int, str]:
    """Prefer a COMPLETE job, then one in progress, then NO_DATA; newest on ties."""
    order = {COMPLETE: 3, IN_PROGRESS: 2, NO_DATA: 1}
    return order.get(job.status, 0), job.created_at or ""
