"""The run's request budget: one rule for how many submissions and list calls a run makes.

A run spends, at most, ``min(max_requests, what the ledger says is left of the quota)``:

* one job-list call first, when jobs are in flight (to collect them), when the ledger
  cannot prove that no earlier run was interrupted (to adopt what it left, see
  :func:`needs_adoption_check`), or while the operator's timezone is unknown;
* then one submission per owed window, oldest first, as long as one request stays
  back to learn how they went (when ``max_wait`` allows waiting);
* then list calls while jobs are in flight, until the budget or ``max_wait`` runs out.

:class:`RunPlan` is that rule, fixed before the first request; :class:`RequestBudget`
applies it while the run spends, writing every request to the ledger before it is
sent. ``--plan`` prints the same :class:`RunPlan` the run then follows, so the two
agree (the run may submit one more job when its first list already shows the timezone).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from tikpay_source.api.ledger import RequestLedger, open_ledger
from tikpay_source.config import TikpayConfig
from tikpay_source.errors import BudgetSpent
from tikpay_source.loading.tables import selected_report_types
from tikpay_source.planning.state import RunState, stored_state
from tikpay_source.planning.windows import (
    DAY,
    DEFAULT_ANCHOR,
    Window,
    format_local,
    iso_duration,
    last_boundary_over,
    span_limit,
)
from tikpay_source.settings import JOBS_TABLE, PROBE_SPAN_DAYS, QUOTA_LIMIT, REPORT_TYPES, TARGET_FILE_BYTES


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
    """What a run will spend: the windows owed, the submissions that fit, and its list calls."""

    windows: tuple[Window, ...]
    in_flight: int
    adoption_check: bool
    budget: int
    quota_left: int
    polls_after_submitting: bool
    window_size: timedelta
    blocked_until: datetime | None = None
    confirms_timezone: bool = False
    notes: tuple[str, ...] = ()
    held_back: tuple[Window, ...] = ()
    """Per report type, the owed range not planned yet: it waits for the size of a probe's file."""
    later_span: timedelta = timedelta(0)
    """How long the jobs for ``held_back`` may be, at most (``max_window``)."""

    @property
    def lists_first(self) -> bool:
        """Whether the run reads the job list before submitting anything."""
        return self.adoption_check or self.in_flight > 0

    @property
    def kept_back(self) -> int:
        """Requests kept back from submitting, to learn how the submissions went."""
        return int(self.polls_after_submitting)

    def may_submit(self, spent: int) -> bool:
        """Whether one more submission fits, with ``spent`` requests already sent this run."""
        return spent + 1 + self.kept_back <= self.budget

    def may_confirm_timezone(self, spent: int) -> bool:
        """Whether a list call to confirm the timezone fits, with a submission after it."""
        return spent + 2 + self.kept_back <= self.budget

    def may_list(self, spent: int) -> bool:
        """Whether one more job-list call fits."""
        return spent < self.budget

    @property
    def submissions(self) -> int:
        """Spans this run submits: what :meth:`may_submit` allows after the first list call.

        While the timezone is unconfirmed, one span goes first and a list call confirms
        the zone before the others (the run skips that call if the first list showed it).
        """
        owed, spent = len(self.windows), int(self.lists_first)
        if owed == 0 or not self.may_submit(spent):
            return 0
        if self.confirms_timezone and owed > 1:
            return 1 + min(owed - 1, max(0, self.budget - self.kept_back - spent - 2))
        return min(owed, self.budget - self.kept_back - spent)

    @property
    def requests(self) -> int:
        """The fewest requests the run spends if every job finishes by its first poll."""
        if not self.windows and not self.in_flight:
            return 0
        polls = int(self.polls_after_submitting and bool(self.submissions))
        confirm = int(self.confirms_timezone and self.submissions > 1)
        return int(self.lists_first) + self.submissions + confirm + polls

    @property
    def windows_per_day(self) -> int:
        """Jobs a day's quota can submit when each run also lists once before and once after."""
        return max(1, QUOTA_LIMIT - 2)

    @property
    def jobs_in_all(self) -> int:
        """Jobs the whole backfill takes: those planned now, and at least enough for what is held back."""
        later = sum(
            math.ceil((w.end - w.start) / max(self.later_span, self.window_size)) for w in self.held_back
        )
        return len(self.windows) + later

    @property
    def days_of_quota(self) -> int:
        """Days of quota the whole backfill takes; a day for the probes first when a size is unknown."""
        if not self.held_back:
            return math.ceil(len(self.windows) / self.windows_per_day) if self.windows else 0
        later = self.jobs_in_all - len(self.windows)
        return max(1, math.ceil(len(self.windows) / self.windows_per_day)) + math.ceil(
            later / self.windows_per_day
        )

    def lines(self) -> list[str]:
        """A plan a person can act on: the jobs, the requests, what the run loads, the whole backfill."""
        out = []
        held = {w.report_type: w for w in self.held_back}
        by_type: dict[str, list[Window]] = {}
        for window in self.windows:
            by_type.setdefault(window.report_type, []).append(window)
        for report_type, owed in sorted(by_type.items()):
            line = f"{report_type}: {len(owed)} job(s) from {format_local(owed[0].start)} to {format_local(owed[-1].end)}"
            longest = max(w.end - w.start for w in owed)
            if report_type in held:
                rest = held[report_type]
                line += (
                    f" (a probe of {iso_duration(longest)}; {format_local(rest.start)} to {format_local(rest.end)} "
                    "follows in jobs sized from its file)"
                )
            elif longest > self.window_size:
                line += f" (windows of {iso_duration(self.window_size)} merged into jobs of up to {iso_duration(longest)})"
            out.append(line)
        if not self.windows:
            out.append("no window to submit")
        if self.in_flight:
            out.append(f"{self.in_flight} job(s) in flight from earlier runs, to be collected")
        out.append(self._requests_line())
        quota = f"quota left by the local ledger: {self.quota_left} of {QUOTA_LIMIT} in the last 24 hours"
        if self.blocked_until:
            quota += f"; the API asked to wait until {self.blocked_until.isoformat(timespec='seconds')}"
        out.append(quota)
        if self.submissions:
            covered = sum((w.end - w.start for w in self.windows[: self.submissions]), timedelta(0)) / DAY
            loads = f"this run loads: {self.submissions} job(s) covering {covered:g} day(s) of reports"
            out.append(
                loads
                + (" once they are done" if self.polls_after_submitting else "; the next run collects them")
            )
        out += list(self.notes)
        if self.jobs_in_all > self.submissions:
            out.append(
                f"backfill: {self.jobs_in_all} job(s) in all need about {self.days_of_quota} day(s) of quota "
                f"at {self.windows_per_day} jobs a day (at best {math.ceil(self.jobs_in_all / QUOTA_LIMIT)}); "
                "a longer max_window means fewer jobs"
            )
        return out

    def _requests_line(self) -> str:
        if self.requests == 0:
            return "this run: no request needed"
        parts = [f"{self.submissions} submission(s)"]
        if self.adoption_check:
            parts.append("1 job-list call first, to adopt jobs an interrupted run may have left")
        elif self.lists_first:
            parts.append("1 job-list call first, to collect the jobs in flight")
        if self.confirms_timezone and self.submissions > 1:
            parts.append("1 job-list call after the first job, to confirm the operator's timezone")
        if self.polls_after_submitting and self.submissions:
            parts.append("at least 1 job-list call to collect the jobs")
        return f"this run: {', '.join(parts)} = {self.requests} request(s) of a budget of {self.budget}"


class RequestBudget:
    """A run's spending against its :class:`RunPlan`: every counted request goes through :meth:`spend`.

    The request is written to the ledger before it is sent, so a crash cannot leave it
    uncounted; past the plan's budget :class:`BudgetSpent` stops the run softly.
    """

    def __init__(self, plan: RunPlan, ledger: RequestLedger) -> None:
        self.plan = plan
        self.ledger = ledger
        self.spent = 0

    @classmethod
    def within_quota(cls, ledger: RequestLedger) -> RequestBudget:
        """A budget of whatever the ledger says is left, with nothing planned (for tools and tests)."""
        left = ledger.remaining()
        plan = RunPlan((), 0, False, left, left, False, timedelta(days=1))
        return cls(plan, ledger)

    def spend(self, kind: str, detail: str | None = None) -> str:
        """Count one request of ``kind`` (submit or list) that is about to be sent; its ledger id.

        Raises :class:`BudgetSpent` past the run's budget, and
        :class:`~tikpay_source.errors.QuotaExhausted` when other processes using the same
        key have spent the quota meanwhile.
        """
        if self.spent >= self.plan.budget:
            raise BudgetSpent(f"the run's budget of {self.plan.budget} request(s) is spent")
        request_id = self.ledger.reserve(kind, detail=detail)
        self.spent += 1
        return request_id

    def refund(self, request_id: str) -> None:
        """A counted request provably never left the machine: it costs nothing."""
        self.ledger.cancel(request_id)
        self.spent -= 1

    def may_submit(self) -> bool:
        return self.plan.may_submit(self.spent)

    def may_list(self) -> bool:
        return self.plan.may_list(self.spent)

    def blocked_until(self) -> float | None:
        """Epoch seconds until which the API told this key to wait, if that time has not passed."""
        return self.ledger.blocked_until()

    def record_wait(self, until: float) -> None:
        """Remember a wait the API imposed, so no later run knocks before it is over."""
        self.ledger.record_wait(until)


def plan_run(
    state: RunState, config: TikpayConfig, ledger: RequestLedger, report_types: tuple[str, ...]
) -> RunPlan:
    """Put the spans owed up to the end bound in ``state`` and fix what submitting them may cost.

    ``state`` is changed (spans added); give it a copy of the state to plan without running.
    A window is owed only once it is over: its last real instant plus ``lag`` has passed.
    Until the API has once reported the operator's timezone, the job list is read before
    submitting, and again after the first submission, so a wrong ``timezone`` is caught
    after one window at most.
    """
    now = datetime.now(timezone.utc)
    notes: list[str] = []
    held_back: list[Window] = []
    for report_type in report_types:
        grid = state.grid(report_type, config.window, config.start_time or DEFAULT_ANCHOR)
        over = last_boundary_over(now, config.timezone, config.lag, grid)
        end = over
        if config.end_time is not None and config.end_time <= over:
            end = config.end_time
        elif config.end_time is not None and not notes:
            notes.append(
                f"end_time {format_local(config.end_time)} is later than the last window that is over "
                f"(plus lag); planning up to {format_local(over)}"
            )
        first_start = config.start_time or grid.floor(over - timedelta(seconds=1))
        known_size = state.bytes_per_day(report_type)
        probe = timedelta(days=state.probe_days(report_type, PROBE_SPAN_DAYS))
        limit = span_limit(known_size, config.window, config.max_window, TARGET_FILE_BYTES, probe)
        # while no file of the type has been seen, one probe span goes first if longer ones could follow
        probing = known_size is None and config.max_window > probe
        planned = state.plan_owed(report_type, grid, first_start, end, limit, probe=probing)
        if probing and planned and planned[-1].end < end:
            held_back.append(Window(planned[-1].end, end, report_type))
    blocked = ledger.blocked_until()
    adoption = needs_adoption_check(state.committed_run_id, ledger.last_run_id())
    return RunPlan(
        windows=tuple(entry.window for entry in state.owed(report_types)),
        in_flight=len(state.in_flight(report_types)),
        adoption_check=adoption or state.api_timezone is None,
        budget=min(config.max_requests, ledger.remaining()),
        quota_left=ledger.remaining(),
        polls_after_submitting=config.max_wait > 0,
        window_size=config.window,
        blocked_until=datetime.fromtimestamp(blocked).astimezone() if blocked else None,
        confirms_timezone=state.api_timezone is None,
        notes=tuple(notes),
        held_back=tuple(held_back),
        later_span=config.max_window,
    )


def plan_next_run(pipeline: Any, source: Any) -> RunPlan:
    """What the next run of ``source`` in ``pipeline`` would spend, without a single API request.

    Reads a copy of the source's state in the pipeline (restore it from the destination
    first on a fresh machine) and the request ledger; changes neither. The report types
    are those of the source's selected resources, as in a run.
    """
    config: TikpayConfig = source.resources[JOBS_TABLE].explicit_args["config"]
    state = RunState(copy.deepcopy(stored_state(pipeline, source.name)), config.file_type)
    if config.retry_failed:
        state.retry_given_up()
    ledger = open_ledger(config.ledger_dir, config.credentials.api_key)
    # as the run picks them: the selected tables' types (with_resources overrides report_types)
    report_types = selected_report_types(REPORT_TYPES, source.selected_resources)
    return plan_run(state, config, ledger, report_types)
