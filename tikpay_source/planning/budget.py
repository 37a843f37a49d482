"""The run's request budget: one rule for how many submissions and list calls a run makes.

A run spends, at most, ``min(max_requests, what the ledger says is left of the quota)``:

* one job-list call first, when jobs are in flight (to collect them), when the ledger
  cannot prove that no earlier run was interrupted (to adopt what it left, see
  :func:`needs_adoption_check`), or while the operator's timezone is unknown;
* then one submission per owed window, oldest first, as long as one request stays
  back to learn how they went (when ``max_wait`` allows waiting);
* then list calls while jobs are in flight, until the budget or ``max_wait`` runs out.

:class:`RunPlan` is that rule, fixed before the first request, and the runner asks it
for every decision (may it submit, must it list for the timezone, is this the last
request); :class:`RequestBudget` applies it while the run spends, writing every request to
the ledger before it is sent. Planning changes nothing: :func:`plan_run` returns the spans
it would add, which a run adopts into its state (``--plan`` does not), and
:func:`prepare_run` is the one preparation both make. So ``--plan`` shows the plan the run
then follows, submissions included (printed by :mod:`tikpay_source.planning.explain`).
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from tikpay_source.api.ledger import RequestLedger
from tikpay_source.config import TikpayConfig
from tikpay_source.errors import BudgetSpent, ConfigError
from tikpay_source.loading.shared_ledger import open_run_ledger
from tikpay_source.loading.tables import selected_report_types
from tikpay_source.planning.state import RunState, stored_state
from tikpay_source.planning.windows import (
    DEFAULT_ANCHOR,
    Window,
    format_local,
    last_boundary_over,
    owed_spans,
    span_limit,
    window_over_at,
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
    new_spans: tuple[Window, ...] = ()
    """The owed spans among ``windows`` that the state does not hold yet: a run adds them."""
    starts: tuple[tuple[str, datetime, datetime], ...] = ()
    """Report types seen for the first time: (type, where its first window starts, its grid's anchor)."""
    next_over: tuple[Window, datetime] | None = None
    """The first window not owed yet and when it is over, lag included (local time); None past end_time."""
    ledger_where: str = "the local ledger"
    """Where the request ledger that counted ``quota_left`` lives, for a person."""

    def nothing_owed(self) -> str:
        """Why a run with nothing to submit or collect does nothing, and when that changes."""
        upcoming = self.upcoming()
        if upcoming is None:
            return "nothing new to load: every window up to end_time is loaded"
        return f"nothing to load yet: {upcoming}"

    def upcoming(self) -> str | None:
        """When the first window not owed yet is over, for a person; None past ``end_time``."""
        if self.next_over is None:
            return None
        window, at = self.next_over
        return (
            f"the next window ({window.describe()}) is over at "
            f"{at.strftime('%Y-%m-%d %H:%M')} {at.tzname()}, lag included"
        )

    @property
    def lists_first(self) -> bool:
        """Whether the run reads the job list before submitting anything."""
        return self.adoption_check or self.in_flight > 0

    @property
    def kept_back(self) -> int:
        """Requests kept back from submitting, to learn how the submissions went."""
        return int(self.polls_after_submitting)

    def may_submit(self, spent: int, submitted: int, *, planned: bool = True) -> bool:
        """Whether one more submission fits, with ``spent`` requests sent and ``submitted`` planned windows.

        Never more of the planned windows than :attr:`submissions`, so the run submits what
        the plan shows, even when its first list already showed the timezone and the
        confirming call is saved. A window the plan could not know of (``planned`` False: its
        job FAILED or expired during the run, or it was submitted already) needs only the budget.
        """
        fits = spent + 1 + self.kept_back <= self.budget
        return fits and (not planned or submitted < self.submissions)

    def planned(self, window: Window) -> bool:
        """Whether ``window`` is one of the windows owed when the run was planned."""
        return window in self._planned_windows

    @functools.cached_property
    def _planned_windows(self) -> frozenset[Window]:
        return frozenset(self.windows)  # asked once per owed window per pass: no scan of the tuple

    def lists_for_timezone(self, submitted: int, timezone_known: bool, listed_for_it: bool) -> bool:
        """Whether the job list must be read now, before the next submission, to confirm the timezone.

        While the operator's zone is unconfirmed one span goes first; the list read after it
        shows the zone before any other is submitted, so a wrong ``timezone`` costs one job.
        """
        return submitted > 0 and not timezone_known and not listed_for_it

    def may_confirm_timezone(self, spent: int) -> bool:
        """Whether a list call to confirm the timezone fits, with a submission after it."""
        return spent + 2 + self.kept_back <= self.budget

    def may_list(self, spent: int) -> bool:
        """Whether one more job-list call fits."""
        return spent < self.budget

    def last_request(self, spent: int) -> bool:
        """Whether the next request is the budget's last (a poll then waits as long as it may)."""
        return spent + 1 >= self.budget

    @property
    def submissions(self) -> int:
        """Spans this run submits at most: what the budget allows after the first list call.

        While the timezone is unconfirmed, one span goes first and a list call confirms
        the zone before the others.
        """
        owed, spent = len(self.windows), int(self.lists_first)
        if owed == 0 or spent + 1 + self.kept_back > self.budget:
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
        """Days of quota (one run a day) the whole backfill takes.

        What is held back for a probe goes in the same run once the probe's file is in, at
        the cost of one more list call that day.
        """
        if not self.jobs_in_all:
            return 0
        per_day = max(1, self.windows_per_day - int(bool(self.held_back)))
        return math.ceil(self.jobs_in_all / per_day)


class RequestBudget:
    """A run's spending against its :class:`RunPlan`: every counted request goes through :meth:`spend`.

    The request is written to the ledger before it is sent, so a crash cannot leave it
    uncounted; past the plan's budget :class:`BudgetSpent` stops the run softly.
    """

    def __init__(self, ledger: RequestLedger) -> None:
        self.ledger = ledger
        self.plan: RunPlan | None = None
        self.spent = 0

    def follow(self, plan: RunPlan) -> None:
        """Spend by ``plan`` from now on; until a plan is followed only the ledger's quota bounds spending."""
        self.plan = plan

    def spend(self, kind: str, detail: str | None = None) -> str:
        """Count one request of ``kind`` (submit or list) that is about to be sent; its ledger id.

        Raises :class:`BudgetSpent` past the run's budget, and
        :class:`~tikpay_source.errors.QuotaExhausted` when other processes using the same
        key have spent the quota meanwhile.
        """
        if self.plan is not None and self.spent >= self.plan.budget:
            raise BudgetSpent(f"the run's budget of {self.plan.budget} request(s) is spent")
        request_id = self.ledger.reserve(kind, detail=detail)
        self.spent += 1
        return request_id

    def refund(self, request_id: str) -> None:
        """A counted request provably never left the machine: it costs nothing."""
        self.ledger.cancel(request_id)
        self.spent -= 1

    def blocked_until(self) -> float | None:
        """Epoch seconds until which the API told this key to wait, if that time has not passed."""
        return self.ledger.blocked_until()

    def record_wait(self, until: float) -> None:
        """Remember a wait the API imposed, so no later run knocks before it is over."""
        self.ledger.record_wait(until)


def prepare_run(
    state: RunState, config: TikpayConfig, ledger: RequestLedger, report_types: tuple[str, ...]
) -> RunPlan:
    """What a run and ``--plan`` both do before a request: retry given-up windows if asked, check the zone, plan.

    Raises ConfigError when the configured ``timezone`` is not the one the API reported.
    """
    if config.retry_failed:
        state.retry_given_up()
    check_timezone(state.api_timezone, config.timezone.key)
    return plan_run(state, config, ledger, report_types)


def check_timezone(reported: str | None, configured: str) -> None:
    """Windows planned in the wrong zone would shift every row: stop before submitting any."""
    if reported and reported != configured:
        raise ConfigError(
            f"timezone is set to {configured} but the API reports the operator's timezone as "
            f"{reported}; set timezone to match"
        )


def plan_run(
    state: RunState,
    config: TikpayConfig,
    ledger: RequestLedger,
    report_types: tuple[str, ...],
    now: datetime | None = None,
) -> RunPlan:
    """The spans owed up to the end bound and what submitting them may cost; ``state`` is not changed.

    A window is owed only once it is over: its last real instant plus ``lag`` has passed.
    Until the API has once reported the operator's timezone, the job list is read before
    submitting, and again after the first submission, so a wrong ``timezone`` is caught
    after one window at most.
    """
    now = now or datetime.now(timezone.utc)
    notes: list[str] = []
    held_back: list[Window] = []
    new_spans: list[Window] = []
    starts: list[tuple[str, datetime, datetime]] = []
    next_over: tuple[Window, datetime] | None = None
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
        began = state.began(report_type)
        if config.start_time is not None and began is not None and config.start_time < began:
            notes.append(
                f"start_time {format_local(config.start_time)} is earlier than where {report_type} began "
                f"({format_local(began)}); a loaded range is not loaded again by start_time: to load "
                f"{report_type} from {format_local(config.start_time)}, run once with --reload "
                f"--report-types {report_type} --start {format_local(config.start_time)[:10]}"
            )
        cursor = state.last_end(report_type)
        if cursor is None:
            cursor = config.start_time or grid.floor(over - timedelta(seconds=1))
            starts.append((report_type, cursor, grid.anchor))
        known_size = state.bytes_per_day(report_type)
        probe = timedelta(days=state.probe_days(report_type, PROBE_SPAN_DAYS))
        limit = span_limit(known_size, config.window, config.max_window, TARGET_FILE_BYTES, probe)
        # while no file of the type has been seen, one probe span goes first if longer ones could follow
        probing = known_size is None and config.max_window > probe
        known = state.known_windows(report_type)
        planned = owed_spans(report_type, known, cursor, end, grid, limit, probe=probing)
        if config.end_time is None or config.end_time > over:
            upcoming = Window(max(cursor, over), grid.next(max(cursor, over)), report_type)
            over_at = (window_over_at(upcoming.end, config.timezone) + config.lag).astimezone(config.timezone)
            if next_over is None or over_at < next_over[1]:
                next_over = (upcoming, over_at)
        new_spans += [span for span in planned if span.key not in state.entries]
        if probing and planned and planned[-1].end < end:
            held_back.append(Window(planned[-1].end, end, report_type))
    owed = [entry.window for entry in state.owed(report_types)] + new_spans
    blocked = ledger.blocked_until()
    adoption = needs_adoption_check(state.committed_run_id, ledger.last_run_id())
    return RunPlan(
        windows=tuple(sorted(owed, key=lambda w: (w.start, w.report_type))),
        in_flight=len(state.in_flight(report_types)),
        adoption_check=adoption or state.api_timezone is None,
        budget=min(config.max_requests, ledger.remaining()),
        quota_left=ledger.remaining(),
        ledger_where=ledger.where,
        polls_after_submitting=config.max_wait > 0,
        window_size=config.window,
        blocked_until=datetime.fromtimestamp(blocked).astimezone() if blocked else None,
        confirms_timezone=state.api_timezone is None,
        notes=tuple(notes),
        held_back=tuple(held_back),
        later_span=config.max_window,
        new_spans=tuple(new_spans),
        starts=tuple(starts),
        next_over=next_over,
    )


def plan_after_probes(
    held_back: Sequence[Window],
    state: RunState,
    config: TikpayConfig,
    ledger: RequestLedger,
    now: datetime | None = None,
) -> tuple[RunPlan, tuple[Window, ...]] | None:
    """The rest of the ``held_back`` ranges whose report type's probe is settled now, and what stays held.

    A probe's file sizes the spans of the rest of its type's range (a NO_DATA answer makes
    the next probe longer), so the run can submit them at once instead of leaving them to
    the next one. None while every held-back type's probe is still owed or in flight.
    """
    if not held_back:  # the common case, after every job list: nothing waits for a probe
        return None
    busy = {e.window.report_type for e in state.owed() + state.in_flight()}
    settled = tuple(dict.fromkeys(w.report_type for w in held_back if w.report_type not in busy))
    if not settled:
        return None
    more = plan_run(state, config, ledger, settled, now)
    still_held = (*more.held_back, *(w for w in held_back if w.report_type not in settled))
    return more, still_held


def plan_next_run(pipeline: Any, source: Any) -> RunPlan:
    """What the next run of ``source`` in ``pipeline`` would spend, without a single API request.

    Reads the source's state in the pipeline (restore it from the destination first on a
    fresh machine) and the request ledger, and prepares the run as the run itself does
    (:func:`prepare_run`); changes neither. The report types are those of the source's
    selected resources, as in a run. Raises ConfigError where the run would stop before
    its first request (a timezone the API contradicts).
    """
    config: TikpayConfig = source.resources[JOBS_TABLE].explicit_args["config"]
    # a copy: reading the state tidies its layout, and --retry-failed changes it
    state = RunState(copy.deepcopy(stored_state(pipeline, source.name)), config.file_type)
    ledger = open_run_ledger(config, pipeline)  # the run's own: local, or shared in the destination
    # as the run picks them: the selected tables' types (with_resources overrides report_types)
    report_types = selected_report_types(REPORT_TYPES, source.selected_resources)
    return prepare_run(state, config, ledger, report_types)
