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
cannot disagree.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tikpay_source.config import TikpayConfig
from tikpay_source.errors import BudgetSpent
from tikpay_source.quota import RequestLedger, open_ledger
from tikpay_source.settings import JOBS_TABLE, QUOTA_LIMIT
from tikpay_source.state import RunState, stored_state
from tikpay_source.tables import selected_report_types
from tikpay_source.windows import Window, format_local, iso_duration


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

    def may_list(self, spent: int) -> bool:
        """Whether one more job-list call fits."""
        return spent < self.budget

    @property
    def submissions(self) -> int:
        """Windows this run submits: as many as :meth:`may_submit` allows after the first list call."""
        room = self.budget - int(self.lists_first) - self.kept_back
        return max(0, min(len(self.windows), room))

    @property
    def requests(self) -> int:
        """The fewest requests the run spends if every job finishes by its first poll."""
        if not self.windows and not self.in_flight:
            return 0
        polls = int(self.polls_after_submitting and bool(self.submissions))
        return int(self.lists_first) + self.submissions + polls

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
        out.append(self._requests_line())
        quota = f"quota left by the local ledger: {self.quota_left} of {QUOTA_LIMIT} in the last 24 hours"
        if self.blocked_until:
            quota += f"; the API asked to wait until {self.blocked_until.isoformat(timespec='seconds')}"
        out.append(quota)
        if len(self.windows) > self.submissions:
            out.append(
                f"backfill: {len(self.windows)} windows of {iso_duration(self.window_size)} need about "
                f"{self.days_of_quota} day(s) of quota at {self.windows_per_day} windows a day; "
                "a larger window means fewer jobs"
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
        if self.requests > self.submissions + int(self.lists_first):
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

    def spend(self, kind: str, detail: str | None = None) -> None:
        """Count one request of ``kind`` (submit or list) that is about to be sent."""
        if self.spent >= self.plan.budget:
            raise BudgetSpent(f"the run's budget of {self.plan.budget} request(s) is spent")
        self.ledger.record_request(kind, detail=detail)
        self.spent += 1

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
    """Put the windows owed up to the end bound in ``state`` and fix what submitting them may cost.

    ``state`` is changed (windows added); give it a copy of the state to plan without running.
    Until the API has once reported the operator's timezone, the job list is read before
    submitting, so a wrong ``timezone`` is caught before any window is sent.
    """
    now_local = datetime.now(config.timezone).replace(tzinfo=None)
    state.plan_owed(report_types, config.first_start(now_local), config.end_bound(now_local), config.window)
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
    )


def plan_next_run(pipeline: Any, source: Any) -> RunPlan:
    """What the next run of ``source`` in ``pipeline`` would spend, without a single API request.

    Reads a copy of the source's state in the pipeline (restore it from the destination
    first on a fresh machine) and the request ledger; changes neither. The report types
    are those of the source's selected resources, as in a run.
    """
    arguments = source.resources[JOBS_TABLE].explicit_args
    config: TikpayConfig = arguments["config"]
    state = RunState(copy.deepcopy(stored_state(pipeline, source.name)), config.file_type)
    if arguments.get("retry_failed"):
        state.retry_given_up()
    ledger = open_ledger(config.ledger_dir, config.credentials.api_key)
    report_types = selected_report_types(config.report_types, source.selected_resources)
    return plan_run(state, config, ledger, report_types)
