"""One run of the ``report_jobs`` resource, as its steps: plan, adopt, submit, wait, load.

The order of the steps is what keeps the quota and the data safe:

1. **plan** the windows owed since ``last_end`` and the run's request budget (no request);
2. **list first** when the budget says so: adopt jobs a crashed run submitted, and learn
   the status of every job in flight;
3. **submit** what is left, oldest window first, as far as the budget allows;
4. **wait**: one list call for all jobs at once, every ``poll_interval`` up to ``max_wait``;
5. **load** each COMPLETE job: its file is streamed to disk and checked whole, the window
   is marked loaded, and the file handed to its table's resource, so dlt commits the
   rows and the state together. A probe's file sizes the rest of its range, owed at once.

A quota stop or an error of the whole run ends it cleanly: what was downloaded is still
loaded and the state saved, and ``last_run`` in the state says what happened. The state
itself is changed only through :class:`~tikpay_source.planning.state.RunState`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

from tikpay_source.api.client import JobsApi
from tikpay_source.api.ledger import RequestLedger
from tikpay_source.api.models import COMPLETE, FAILED, IN_PROGRESS, NO_DATA, ApiJob, job_duration
from tikpay_source.api.polls import SYSTEM_CLOCK, Clock, PollSchedule
from tikpay_source.config import TikpayConfig
from tikpay_source.errors import (
    ApiError,
    BudgetSpent,
    ConfigError,
    QuotaExhausted,
    ReadInterrupted,
    RequestNotSent,
    SubmissionUncertain,
    TikpayError,
)
from tikpay_source.files.fetching import (
    DESTINATION_REFUSED,
    LATER,
    LINK_REFUSED,
    WAIT_FOR_LINK,
    Problem,
    ReportFetcher,
)
from tikpay_source.loading.handover import FileHandover
from tikpay_source.loading.tables import LOADED_STATUS, NO_DATA_STATUS, job_row
from tikpay_source.loading.writers import HandedFile
from tikpay_source.outcome import RunOutcome
from tikpay_source.planning.budget import (
    RequestBudget,
    RunPlan,
    check_timezone,
    plan_after_probes,
    prepare_run,
)
from tikpay_source.planning.state import OWED, SUBMITTED, Entry, RunState
from tikpay_source.planning.windows import Window, format_local
from tikpay_source.progress import wait_for_poll
from tikpay_source.settings import LOGGER_NAME, MAX_UNUSABLE_ANSWERS, PROBE_SPAN_DAYS

log = logging.getLogger(LOGGER_NAME)


class ReportJobRunner:
    """Drives one run; a generator of ``report_jobs`` rows (and ``None`` while a file is being read).

    It is given its collaborators: the API, the run's request budget (with the key's
    ledger) that the API spends through, the fetcher of the run's files, and a clock.
    """

    def __init__(
        self,
        config: TikpayConfig,
        state: RunState,
        handover: FileHandover,
        report_types: tuple[str, ...],
        *,
        api: JobsApi,
        budget: RequestBudget,
        fetcher: ReportFetcher,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.config = config
        self.state = state
        self.handover = handover
        self.report_types = report_types
        self.api = api
        self.budget = budget
        self.clock = clock
        self.outcome = RunOutcome()
        self.run_id = uuid.uuid4().hex
        # windows set aside for the rest of this run (their file or the API's answer failed)
        self._set_aside: set[str] = set()
        self._unusable: dict[str, int] = {}
        self._refused: dict[str, str] = {}
        self._timed: set[str] = set()
        self._asked_timezone = False
        self._held_back: tuple[Window, ...] = ()  # ranges waiting for their type's probe to size them
        self._submitted: set[str] = set()  # planned windows this run submitted (a FAILED one may go again)
        self._polls = PollSchedule(config.poll_interval, 0.0)
        self._fetcher = fetcher

    def run(self) -> Iterator[dict[str, Any] | None]:
        """Yield every item of this run, then record the run's outcome in the state."""
        ledger = self.budget.ledger
        try:
            plan = self._plan(ledger)
            if plan is None:
                return
            self._held_back = plan.held_back
            yield from self._steps(plan)
        except ReadInterrupted:
            raise  # the extract must fail, or the rows already handed to dlt would load
        except BudgetSpent as exc:
            log.info("%s; what is left waits for the next run", exc)
        except QuotaExhausted as exc:
            self.outcome.stop("quota", str(exc), exc.retry_at)
            log.info("stopped for quota: %s", exc)
        except ConfigError as exc:
            self.outcome.stop("config", str(exc))
            log.info("stopped: %s", exc)
        except TikpayError as exc:
            self.outcome.stop("error", str(exc))
            log.info("stopped: %s", exc)
        finally:
            self.handover.close()
            self._stop_if_quota_spent(ledger)
            upcoming = self.budget.plan.upcoming() if self.budget.plan else None
            self.outcome.finish(
                self.state,
                self.run_id,
                self.report_types,
                self.budget.spent,
                ledger.remaining(),
                self._held_back,
                self._refused,
                upcoming,
            )

    def _stop_if_quota_spent(self, ledger: RequestLedger) -> None:
        """Work left and no quota to do it: a quota stop (exit 3), whoever spent it, this run or another."""
        left = self.state.owed(self.report_types) or self.state.in_flight(self.report_types)
        if self.outcome.stopped or not left or self.budget.plan is None:
            return
        ledger.refresh()
        if ledger.remaining() > 0:
            return
        spent = ledger.quota_spent(
            f"this API key's 24-hour quota is spent by the request ledger in {ledger.where}"
        )
        self.outcome.stop("quota", str(spent), spent.retry_at)
        log.info("stopped for quota: the key's 24-hour quota is spent; what is left waits for it")

    # --- the steps ----------------------------------------------------------------------

    def _plan(self, ledger: RequestLedger) -> RunPlan | None:
        """Step 1: what is owed and what the run may spend; None when there is nothing to do.

        The same preparation as ``--plan`` (:func:`prepare_run`); the run then takes the
        plan's new spans into its state.
        """
        plan = prepare_run(self.state, self.config, ledger, self.report_types)
        self.state.add_owed(plan.new_spans, plan.starts)
        self.budget.follow(plan)
        ledger.record_run(self.run_id)
        if not plan.windows and not plan.in_flight:
            log.info("%s", plan.nothing_owed())
            return None
        if plan.budget <= 0:
            raise ledger.quota_spent(
                f"no requests left in this API key's 24-hour quota by the request ledger in {ledger.where}"
            )
        return plan

    def _steps(self, plan: RunPlan) -> Iterator[dict[str, Any] | None]:
        """Steps 2 to 5: list first if the plan says so, then submit and collect until done or out of time."""
        for note in plan.notes:
            log.info("%s", note)
        self._polls = PollSchedule(self.config.poll_interval, self.clock.now() + self.config.max_wait)
        if plan.lists_first:
            yield from self._collect()
        while True:
            yield from self._submit_owed()
            if not self._waiting_for() or not plan.may_list(self.budget.spent):
                return
            now = self.clock.now()
            poll_at = self._polls.next_at(now, last_request=plan.last_request(self.budget.spent))
            if now >= self._polls.deadline:
                return
            wait_for_poll(self.clock, poll_at, len(self._waiting_for()), self._polls.expected_done())
            yield from self._collect()

    def _submit_owed(self) -> Iterator[dict[str, Any] | None]:
        """Submit owed spans, oldest first, as far as the budget allows.

        While the operator's timezone is unknown (a new account lists no jobs), one span goes
        first and the job list is read before the others: a wrong ``timezone`` costs one job.
        """
        plan = self.budget.plan
        assert plan is not None
        for entry in self.state.owed(self.report_types):
            if entry.status != OWED:  # adopted by a list call made during this loop
                continue
            if entry.window.key in self._set_aside:  # its file was bad this run: a new job waits for the next
                continue
            if plan.lists_for_timezone(
                self.outcome.submitted, self.state.api_timezone is not None, self._asked_timezone
            ):
                if not plan.may_confirm_timezone(self.budget.spent):
                    log.info("request budget reached before the timezone was confirmed; the rest waits")
                    return
                log.info("confirming the operator's timezone from the job list before submitting more")
                self._asked_timezone = True
                yield from self._collect()
                if self.state.api_timezone is None:
                    log.warning(
                        "the job list reports no timezone; going on with %s", self.config.timezone.key
                    )
            planned = plan.planned(entry.window) and entry.window.key not in self._submitted
            if not plan.may_submit(self.budget.spent, len(self._submitted), planned=planned):
                left = len(self.state.owed(self.report_types))
                log.info("request budget reached; %d window(s) left for the next run", left)
                return
            window = entry.window
            if planned:
                self._submitted.add(window.key)  # one of the plan's submissions, whatever the answer
            try:
                job_id = self.api.submit(
                    window.report_type, format_local(window.start), format_local(window.end), entry.file_type
                )
            except RequestNotSent:
                raise  # the API cannot be reached: the window stays owed, no attempt counted
            except SubmissionUncertain as exc:
                self.state.submission_unclear(entry)
                log.info("%s: submission unclear (%s); the next job list decides", window.describe(), exc)
                continue
            except ApiError as exc:  # refused: this window only, with its attempts counted
                self.state.refused(entry, str(exc))
                self._refused[window.key] = str(exc)
                log.info("%s: %s; %s", window.describe(), exc, self._next_step(entry))
                continue
            self.state.submitted(entry, job_id)
            self._polls.submitted(self.clock.now(), self.state.job_seconds(window.report_type))
            self.outcome.submitted += 1
            log.info("submitted %s as job %s", window.describe(), job_id)
            yield job_row(entry, self.config.timezone, load_status="submitted")

    def _collect(self) -> Iterator[dict[str, Any] | None]:
        """One list call: adopt jobs for owed windows, learn every job's status, load finished ones."""
        jobs = self.api.list_jobs()
        self._polls.polled(self.clock.now())
        self._check_timezone(jobs)
        self._learn_durations(jobs)
        for entry in self.state.reconcile(jobs):
            self.outcome.adopted += 1
            log.info("adopted job %s already submitted for %s", entry.job_id, entry.window.describe())
        by_id = {job.job_id: job for job in jobs}
        for entry in self._waiting_for():
            job = by_id.get(entry.job_id or "")
            if job is not None:
                yield from self._settle(entry, job)
        self._plan_after_probes()
        pending = len(self._waiting_for())
        if pending:
            log.info("%d job(s) still in progress", pending)

    def _plan_after_probes(self) -> None:
        """A probe's file has sized the rest of its report type's range: owe that now, not next run."""
        planned = plan_after_probes(self._held_back, self.state, self.config, self.budget.ledger)
        if planned is None:
            return
        more, self._held_back = planned
        self.state.add_owed(more.new_spans, more.starts)
        if more.new_spans:
            log.info(
                "%d more job(s) planned from the probes' files; submitted in this run", len(more.new_spans)
            )

    def _learn_durations(self, jobs: list[ApiJob]) -> None:
        """Remember how long this run's finished jobs took, per report type, to time later polls."""
        ours = {e.job_id: e.window.report_type for e in self.state.in_flight(self.report_types)}
        for job in jobs:
            if job.job_id in ours and job.job_id not in self._timed:
                seconds = job_duration(job, self.config.timezone)
                if seconds is not None:
                    self.state.observe_job(ours[job.job_id], seconds)
                    self._timed.add(job.job_id)

    def _waiting_for(self) -> list[Entry]:
        """Jobs in flight that this run can still finish (not those it has set aside)."""
        return [e for e in self.state.in_flight(self.report_types) if e.window.key not in self._set_aside]

    def _settle(self, entry: Entry, job: ApiJob) -> Iterator[dict[str, Any] | None]:
        """Act on one job's status as the list reports it."""
        zone = self.config.timezone
        if job.status == COMPLETE and job.download_url:
            self.state.complete(entry)
            yield from self._load(entry, job)
        elif job.status == NO_DATA:
            self.state.loaded(entry)
            self.state.observe_empty(entry.window, PROBE_SPAN_DAYS, self.config.max_window.days)
            self.outcome.loaded(entry.window.report_type, 0)
            log.info("%s: no data (job %s)", entry.window.describe(), job.job_id)
            yield job_row(entry, zone, load_status=NO_DATA_STATUS, job=job, rows_loaded=0)
        elif job.status == FAILED:
            self.state.failed(entry, f"job {job.job_id} FAILED at Tikpay")
            log.info("%s: job %s FAILED; %s", entry.window.describe(), job.job_id, self._next_step(entry))
            yield job_row(entry, zone, load_status="failed", job=job)
        elif job.status != IN_PROGRESS:
            problem = (
                "is COMPLETE but has no downloadUrl"
                if job.status == COMPLETE
                else (f"has an unknown status {job.status!r}")
            )
            self._unusable_answer(entry, f"job {job.job_id} {problem}")

    def _unusable_answer(self, entry: Entry, reason: str) -> None:
        """An answer about a job the connector cannot act on: reported once, set aside after a few polls."""
        key = entry.window.key
        seen = self._unusable[key] = self._unusable.get(key, 0) + 1
        if seen == 1:
            self.state.not_loaded(entry, reason)
            self.outcome.window_errors.append(f"{entry.window.describe()}: {reason}")
        if seen >= MAX_UNUSABLE_ANSWERS:
            self._set_aside.add(key)
            log.info(
                "%s: %s; set aside after %d polls, the next run asks again",
                entry.window.describe(),
                reason,
                seen,
            )

    def _next_step(self, entry: Entry, when: str = "") -> str:
        if entry.status == SUBMITTED:
            return "waiting"
        again = f"it will be submitted again{' by the ' + when if when else ''}"
        return again if entry.status == OWED else "giving up after repeated failures"

    def _load(self, entry: Entry, job: ApiJob) -> Iterator[dict[str, Any] | None]:
        """Fetch the job's file, mark the window loaded and hand the file to its table's resource."""
        fetched = self._fetcher.fetch(entry.window, job)
        if isinstance(fetched, Problem):
            yield from self._not_loaded(entry, job, fetched)
            return
        report = fetched.report
        state_loaded_it = self.state.has_loaded(entry.window)
        self.state.loaded(entry)
        self.state.observe_file(entry.window, fetched.size)
        self.outcome.loaded(entry.window.report_type, report.rows)
        log.info("%s: loaded %d rows (job %s)", entry.window.describe(), report.rows, job.job_id)
        self.handover.offer(HandedFile(job.job_id, report, entry.window, state_loaded_it, fetched.files))
        yield job_row(
            entry,
            self.config.timezone,
            load_status=LOADED_STATUS,
            job=job,
            rows_loaded=report.rows,
            file_size=fetched.size,
        )
        yield from self.handover.wait()
        self._fetcher.loaded(entry.window.report_type, report)

    def _not_loaded(self, entry: Entry, job: ApiJob, problem: Problem) -> Iterator[dict[str, Any]]:
        """A file that could not be fetched: wait for a fresh link, or set the window aside and say why."""
        if problem.kind == WAIT_FOR_LINK:
            return
        self._set_aside.add(entry.window.key)
        if problem.kind == LATER:
            return
        reason = f"job {job.job_id}: {problem.reason}"
        if problem.kind in (LINK_REFUSED, DESTINATION_REFUSED):  # not the file's fault: same job, next run
            self.state.not_loaded(entry, reason)
            next_step, status = "the next run tries again", "error"
        else:  # the file stayed bad: a new job, next run, like a FAILED one
            self.state.file_refused(entry, reason, problem.digest)
            next_step, status = self._next_step(entry, "next run"), "failed"
        message = f"{entry.window.describe()}: {entry.error}; {next_step}"
        self.outcome.window_errors.append(message)
        log.info("%s", message)
        yield job_row(entry, self.config.timezone, load_status=status, job=job)

    def _check_timezone(self, jobs: list[ApiJob]) -> None:
        """Windows planned in the wrong zone would shift every row: stop before submitting any.

        The zone the job list reports is remembered in the state, so later runs check it
        before their first request, even when they submit before listing.
        """
        zones = sorted({job.timezone for job in jobs if job.timezone})
        if zones:
            self.state.remember_timezone(zones[0])
        check_timezone(self.state.api_timezone, self.config.timezone.key)
