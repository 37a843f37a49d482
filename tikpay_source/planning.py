"""Planning a run's requests before spending any: pure arithmetic over the window book and the ledger.

The same plan drives a real run (how many windows to submit) and ``--plan`` (what a
run would do, and how many days of quota a backfill needs), so the two never disagree.

A run spends, at most:

* one job-list call before submitting, unless the ledger proves no earlier run of this
  pipeline can have left a live job behind (see :func:`needs_adoption_check`);
* one submission per window, oldest first;
* the list calls that learn how the submissions went (at least one, if ``max_wait`` > 0).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tikpay_source.config import TikpayConfig
from tikpay_source.jobs import WindowBook, saved_state
from tikpay_source.quota import RequestLedger, open_ledger
from tikpay_source.settings import JOBS_TABLE, QUOTA_LIMIT
from tikpay_source.windows import Window, format_local


def needs_adoption_check(committed_run_id: str | None, ledger_last_run_id: str | None) -> bool:
    """Whether a job list must be read before submitting, to adopt jobs a crashed run left.

    Every run writes its id to the request ledger before its first request, and to dlt
    state when it finishes. If the ledger's latest run is the one the state committed,
    every submission the ledger knows of is in the state, and no check is needed. Any
    other case (a run that crashed, another machine, no history) pays one list call.
    """
    return committed_run_id is None or committed_run_id != ledger_last_run_id


@dataclass(frozen=True)
class RunPlan:
    """What a run would spend: windows owed, submissions that fit, and list calls."""

    windows: tuple[Window, ...]
    in_flight: int
    adoption_check: bool
    budget: int
    quota_left: int
    polls_after_submitting: bool
    window_size: timedelta
    blocked_until: datetime | None = None

    @property
    def submissions(self) -> int:
        """Windows this run submits: as many as fit beside the list calls it must make."""
        reserve = int(self.adoption_check) + int(self.polls_after_submitting)
        return max(0, min(len(self.windows), self.budget - reserve))

    @property
    def requests(self) -> int:
        """The fewest requests the run spends if every job finishes by its first poll."""
        if not self.windows and not self.in_flight:
            return 0
        polls = int(self.polls_after_submitting and bool(self.submissions or self.in_flight))
        return int(self.adoption_check) + self.submissions + polls

    @property
    def windows_per_day(self) -> int:
        """Windows a day's quota can submit when each run also lists once before and once after."""
        return max(1, QUOTA_LIMIT - 2)

    @property
    def days_of_quota(self) -> int:
        return math.ceil(len(self.windows) / self.windows_per_day) if self.windows else 0

    def lines(self) -> list[str]:
        """A plan a person can act on, e.g. by choosing a larger window for a long backfill."""
        out = []
        by_type: dict[str, list[Window]] = {}
        for window in self.windows:
            by_type.setdefault(window.report_type, []).append(window)
        for report_type, owed in sorted(by_type.items()):
            out.append(
                f"{report_type}: {len(owed)} window(s) from {format_local(owed[0].start)} to {format_local(owed[-1].end)}"
            )
        if not self.windows:
            out.append("no window to submit")
        if self.in_flight:
            out.append(f"{self.in_flight} job(s) in flight from earlier runs, to be collected")
        if self.requests == 0:
            out.append("this run: no request needed")
        else:
            parts = [f"{self.submissions} submission(s)"]
            if self.adoption_check:
                parts.append("1 job-list call first, to adopt jobs an interrupted run may have left")
            if self.requests > self.submissions + int(self.adoption_check):
                parts.append("at least 1 job-list call to collect the jobs")
            out.append(
                f"this run: {', '.join(parts)} = {self.requests} request(s) of a budget of {self.budget}"
            )
        quota = f"quota left by the local ledger: {self.quota_left} of {QUOTA_LIMIT} in the last 24 hours"
        if self.blocked_until:
            quota += f"; the API asked to wait until {self.blocked_until.isoformat(timespec='seconds')}"
        out.append(quota)
        if len(self.windows) > self.submissions:
            size = _duration(self.window_size)
            out.append(
                f"backfill: {len(self.windows)} windows of {size} need about {self.days_of_quota} day(s) of quota "
                f"at {self.windows_per_day} windows a day; a larger window means fewer jobs"
            )
        return out


def _duration(size: timedelta) -> str:
    """An ISO 8601 rendering of a window size (P1D, PT6H, PT30M)."""
    if size % timedelta(days=1) == timedelta(0):
        return f"P{size.days}D"
    minutes = int(size.total_seconds() // 60)
    return f"PT{minutes // 60}H" if minutes % 60 == 0 else f"PT{minutes}M"


def plan_run(
    book: WindowBook,
    config: TikpayConfig,
    ledger: RequestLedger,
    committed_run_id: str | None,
    timezone_known: bool,
) -> RunPlan:
    """Put the windows owed up to the end bound in ``book`` and say what submitting them costs.

    ``book`` is changed (windows added); give it a copy of the state to plan without running.
    Until the API has once reported the operator's timezone, the job list is read before
    submitting, so a wrong ``timezone`` is caught before any window is sent.
    """
    now_local = datetime.now(config.timezone).replace(tzinfo=None)
    book.add_planned(book.plan(now_local))
    blocked = ledger.blocked_until()
    return RunPlan(
        windows=tuple(entry.window for entry in book.to_submit()),
        in_flight=len(book.in_flight()),
        adoption_check=needs_adoption_check(committed_run_id, ledger.last_run_id()) or not timezone_known,
        budget=min(config.max_requests, ledger.remaining()),
        quota_left=ledger.remaining(),
        polls_after_submitting=config.max_wait > 0,
        window_size=config.window,
        blocked_until=datetime.fromtimestamp(blocked).astimezone() if blocked else None,
    )


def plan_next_run(pipeline: Any, source: Any) -> RunPlan:
    """What the next run of ``source`` in ``pipeline`` would spend, without a single API request.

    Reads a copy of the pipeline's state (restore it from the destination first on a
    fresh machine) and the request ledger; changes neither.
    """
    arguments = source.resources[JOBS_TABLE].explicit_args
    config: TikpayConfig = arguments["config"]
    state = copy.deepcopy(saved_state(pipeline))
    book = WindowBook(state, config)
    if arguments.get("retry_failed"):
        book.retry_gave_up()
    ledger = open_ledger(config.ledger_dir, config.credentials.api_key)
    return plan_run(book, config, ledger, state.get("run_id"), "api_timezone" in state)
