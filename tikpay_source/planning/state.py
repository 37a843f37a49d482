"""The connector's state: every key dlt keeps for it, and every change a window goes through.

This module is the one owner of the state's layout. It lives in the source's own section
of the pipeline state, ``sources.<source name>``, so a cloned or renamed source
(``tikpay.clone(name="tikpay_prod")``) keeps a state of its own, and dlt commits it to
the destination together with the rows it describes. Each report type's progress is in
the resource state of its table, so refreshing one table (dlt's ``refresh="drop_resources"``
with that resource selected) starts that report type afresh and leaves the others be:

* ``resources.<table>.last_end``: the end of the last window loaded with every window before it;
* ``resources.<table>.windows[key]``: each job's span past ``last_end`` that has been
  submitted, loaded out of order, or failed, with its job id and attempt count;
* ``resources.<table>.anchor``: where the report type's window grid starts;
* ``resources.<table>.bytes_per_day`` and ``job_seconds``: the size of its last file and
  how long its recent jobs took, which size later spans and time the polls;
* ``resources.report_jobs.api_timezone``: the operator's zone as the job list reported it;
* ``resources.report_jobs.run_id``: the id of the last run whose extract finished (see
  :mod:`tikpay_source.planning.budget`);
* ``resources.report_jobs.last_run``: what that run did, read back by
  :func:`tikpay_source.outcome.run_summary`.

A window's life, each arrow one method of :class:`RunState`::

    owed --submitted--> submitted --complete--> complete --loaded--> loaded
      |  --submission_unclear--> uncertain --adopted/failed--^
      ^-------- failed (FAILED, expired, refused, file_refused) while attempts remain; then gave_up

Nothing here makes a request; the runner does, and tells this module what it learnt.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from tikpay_source.api.models import FAILED, ApiJob
from tikpay_source.planning.entries import (
    COMPLETE_NOT_LOADED,
    GAVE_UP,
    LIVE,
    LOADED,
    OWED,
    SUBMITTED,
    SUPERSEDED,
    UNCERTAIN,
    Entry,
    earlier_part,
    job_window,
    lost,
    rank,
    window_from_key,
)
from tikpay_source.planning.windows import (
    DAY,
    DEFAULT_ANCHOR,
    Grid,
    Window,
    format_local,
    parse_local,
)
from tikpay_source.settings import JOB_DURATIONS_KEPT, JOBS_TABLE, MAX_SUBMIT_ATTEMPTS, REPORT_TABLES


def stored_state(pipeline: Any, source_name: str | None = None) -> dict[str, Any]:
    """The connector's source state in ``pipeline`` (empty if it never ran), for reading only.

    ``source_name`` is the source's real name (``source.name``). Without it, the source is
    the one of the pipeline whose last run finished latest, which is the only one in
    nearly every pipeline.
    """
    sources: dict[str, Any] = pipeline.state.get("sources", {})
    if source_name is not None:
        return sources.get(source_name, {})
    ours = [held for held in sources.values() if isinstance(held.get("resources", {}).get(JOBS_TABLE), dict)]
    return max(ours, key=lambda held: _finished_at(held["resources"][JOBS_TABLE]), default={})


def last_run_of(source_state: dict[str, Any]) -> dict[str, Any]:
    """The ``last_run`` record in a source state (empty if the source never finished a run)."""
    return source_state.get("resources", {}).get(JOBS_TABLE, {}).get("last_run") or {}


def _finished_at(run: dict[str, Any]) -> str:
    return (run.get("last_run") or {}).get("finished_at") or ""


class RunState:
    """Reads and changes the connector's source state dict (dlt's, or a copy for ``--plan``)."""

    def __init__(self, source_state: dict[str, Any], file_type: str) -> None:
        self._resources: dict[str, Any] = source_state.setdefault("resources", {})
        self._run: dict[str, Any] = self._resources.setdefault(JOBS_TABLE, {})
        self._file_type = file_type
        _move_progress_to_tables(self._run, self._resources)
        self.entries: dict[str, Entry] = {}
        for table in REPORT_TABLES.values():
            for key, value in self._resources.get(table, {}).get("windows", {}).items():
                self.entries[key] = Entry(window_from_key(key), **value)

    # --- what is known ------------------------------------------------------------------

    @property
    def api_timezone(self) -> str | None:
        return self._run.get("api_timezone")

    @property
    def committed_run_id(self) -> str | None:
        return self._run.get("run_id")

    def last_end(self, report_type: str) -> datetime | None:
        value = self._resources.get(REPORT_TABLES[report_type], {}).get("last_end")
        return parse_local(value) if value else None

    def began(self, report_type: str) -> datetime | None:
        """Where the report type's first run started its grid (its first ``start_time``), if it has run."""
        value = self._resources.get(REPORT_TABLES[report_type], {}).get("anchor")
        return parse_local(value) if value and self.last_end(report_type) is not None else None

    def _set_last_end(self, report_type: str, value: datetime) -> None:
        self._resources.setdefault(REPORT_TABLES[report_type], {})["last_end"] = format_local(value)

    def has_loaded(self, window: Window) -> bool:
        """Whether this state loaded a window overlapping ``window`` (its rows may then be in the table)."""
        last_end = self.last_end(window.report_type)
        if last_end is not None and window.start < last_end:
            return True
        return any(
            e.status == LOADED and e.window.report_type == window.report_type and e.window.overlaps(window)
            for e in self.entries.values()
        )

    def owed(self, report_types: Iterable[str] | None = None) -> list[Entry]:
        """Entries waiting for a submission, oldest window first across report types."""
        return self._with_status((OWED,), report_types)

    def in_flight(self, report_types: Iterable[str] | None = None) -> list[Entry]:
        """Entries whose job is alive (or whose submission is unknown), oldest first."""
        return self._with_status(LIVE, report_types)

    def _with_status(self, statuses: tuple[str, ...], report_types: Iterable[str] | None) -> list[Entry]:
        chosen = set(report_types) if report_types is not None else set(REPORT_TABLES)
        found = [e for e in self.entries.values() if e.status in statuses and e.window.report_type in chosen]
        return sorted(found, key=lambda e: (e.window.start, e.window.report_type))

    def gave_up(self) -> list[Entry]:
        return sorted((e for e in self.entries.values() if e.status == GAVE_UP), key=lambda e: e.window)

    # --- planning -----------------------------------------------------------------------

    def grid(self, report_type: str, size: timedelta, anchor: datetime) -> Grid:
        """The report type's window grid: on the anchor it started with, else on ``anchor``.

        A report type that has loaded before without an anchor in its state started on
        the grid of the first release (:data:`DEFAULT_ANCHOR`).
        """
        held = self._resources.get(REPORT_TABLES[report_type], {})
        if "anchor" in held:
            return Grid(parse_local(held["anchor"]), size)
        return Grid(DEFAULT_ANCHOR if "last_end" in held else anchor, size)

    def known_windows(self, report_type: str) -> list[Window]:
        """The spans of the report type past ``last_end`` that the state holds, whatever their status."""
        return sorted(e.window for e in self.entries.values() if e.window.report_type == report_type)

    def add_owed(
        self, spans: Iterable[Window], starts: Iterable[tuple[str, datetime, datetime]] = ()
    ) -> None:
        """Take a plan's new spans as owed, and where a report type starts: ``(type, first start, anchor)``.

        The plan is made without changing the state (see :func:`tikpay_source.planning.budget.plan_run`);
        a run adopts it here before its first request.
        """
        for report_type, first_start, anchor in starts:
            if self.last_end(report_type) is None:
                self._set_last_end(report_type, first_start)
                self._resources[REPORT_TABLES[report_type]]["anchor"] = format_local(anchor)
        for span in spans:
            self.entries.setdefault(span.key, Entry(span, OWED, file_type=self._file_type))

    def bytes_per_day(self, report_type: str) -> float | None:
        """File bytes per day of the report type's last loaded file, if one was loaded."""
        return self._resources.get(REPORT_TABLES[report_type], {}).get("bytes_per_day")

    def job_seconds(self, report_type: str) -> list[float]:
        """How long the report type's recent jobs took at Tikpay, createdAt to completedAt."""
        return list(self._resources.get(REPORT_TABLES[report_type], {}).get("job_seconds", []))

    def observe_file(self, window: Window, size: int) -> None:
        days = (window.end - window.start) / DAY
        held = self._resources.setdefault(REPORT_TABLES[window.report_type], {})
        held["bytes_per_day"] = round(size / days, 1)

    def probe_days(self, report_type: str, first: int) -> int:
        """How many days the next probe of a report type asks for (``first`` until a probe came back empty)."""
        return int(self._resources.get(REPORT_TABLES[report_type], {}).get("probe_days", first))

    def observe_empty(self, window: Window, first: int, longest: int) -> None:
        """A NO_DATA answer says nothing of file sizes: while none is known, the next probe is four times longer."""
        held = self._resources.setdefault(REPORT_TABLES[window.report_type], {})
        if "bytes_per_day" not in held:
            held["probe_days"] = min(longest, 4 * int(held.get("probe_days", first)))

    def observe_job(self, report_type: str, seconds: float) -> None:
        held = self._resources.setdefault(REPORT_TABLES[report_type], {})
        held["job_seconds"] = [*held.get("job_seconds", []), round(seconds, 3)][-JOB_DURATIONS_KEPT:]

    # --- a window's transitions -----------------------------------------------------------

    def submitted(self, entry: Entry, job_id: str) -> None:
        entry.attempts += 1
        entry.status, entry.job_id, entry.error = SUBMITTED, job_id, None

    def submission_unclear(self, entry: Entry) -> None:
        """The answer to a submission was lost: the next job list tells whether the job exists."""
        entry.attempts += 1
        entry.status, entry.job_id = UNCERTAIN, None

    def never_submitted(self, entry: Entry, reason: str) -> None:
        """An unclear submission the job list shows never happened: owed again, and no attempt."""
        entry.attempts = max(0, entry.attempts - 1)
        self.failed(entry, reason)

    def refused(self, entry: Entry, reason: str) -> None:
        """The API refused the submission (a 4xx, a 501): it counts as an attempt that failed."""
        entry.attempts += 1
        self.failed(entry, reason)

    def adopted(self, entry: Entry, job: ApiJob) -> None:
        """A live job found in the list for a window that was owed or uncertain."""
        entry.status, entry.job_id, entry.error = SUBMITTED, job.job_id, None

    def complete(self, entry: Entry) -> None:
        entry.status = COMPLETE_NOT_LOADED

    def failed(self, entry: Entry, reason: str) -> None:
        """The job FAILED, expired or never existed: owed again while attempts remain, else given up."""
        entry.error, entry.job_id = reason, None
        entry.status = OWED if entry.attempts < MAX_SUBMIT_ATTEMPTS else GAVE_UP

    def file_refused(self, entry: Entry, reason: str, digest: str | None = None) -> None:
        """The job's file stayed unreadable after every download: submit the window again, or give up.

        A new job may well render a good file; the attempt counts as a failed one, so a
        file that is always bad ends like a job that always FAILS (given up, reported).
        The refused job stays live in the API's list; it is never adopted again. A file
        that downloaded the same every time (``digest``) and that a new job renders again
        byte for byte will not change by asking once more: the window is given up at once.
        """
        same_again = digest is not None and digest == entry.refused_digest
        entry.refused_job, entry.refused_digest = entry.job_id, digest
        if same_again:
            entry.error, entry.job_id, entry.status = (
                f"{reason}; a new job gave the same file byte for byte, so it is not submitted again "
                "(run with --retry-failed once Tikpay has fixed the export)",
                None,
                GAVE_UP,
            )
            return
        self.failed(entry, reason)

    def not_loaded(self, entry: Entry, reason: str) -> None:
        """The job's file, or the API's answer about it, could not be used: tried again next run."""
        entry.error = reason

    def loaded(self, entry: Entry) -> None:
        """The window's rows are in this load; advance ``last_end`` over every loaded prefix."""
        entry.status, entry.error = LOADED, None
        report_type = entry.window.report_type
        mine = sorted(
            (e for e in self.entries.values() if e.window.report_type == report_type), key=lambda e: e.window
        )
        cursor = self.last_end(report_type)
        for earlier in mine:
            if earlier.status != LOADED or earlier.window.start != cursor:
                break
            cursor = earlier.window.end
            del self.entries[earlier.window.key]
        if cursor is not None:
            self._set_last_end(report_type, cursor)

    def retry_given_up(self) -> None:
        """Give windows that exhausted their attempts a fresh set (``--retry-failed``)."""
        for entry in self.gave_up():
            entry.status, entry.attempts, entry.error = OWED, 0, None

    # --- what the job list said -------------------------------------------------------------

    def reconcile(self, jobs: Iterable[ApiJob]) -> list[Entry]:
        """Match the job list against the state; return the owed entries that adopted a job.

        Jobs already submitted for a window that is owed or uncertain (same report type,
        start, end and file type, not FAILED) are adopted instead of submitted again: this
        is what makes a crash after a submission harmless. So is a live job for a window
        whose own job FAILED or expired, or that gave up: a run that died uncommitted may
        have submitted it again. Known jobs missing from the list have expired before being
        loaded, and their windows are owed again.
        """
        by_id: dict[str, ApiJob] = {}
        live_by_window: dict[tuple[str, str], ApiJob] = {}
        live_by_start: dict[tuple[str, datetime, str], list[tuple[Window, ApiJob]]] = {}
        refused = {e.refused_job for e in self.entries.values() if e.refused_job}
        for job in jobs:
            by_id[job.job_id] = job
            window = job_window(job)
            if window is None or job.status == FAILED or job.job_id in refused:
                continue
            slot = (window.key, job.file_type)
            current = live_by_window.get(slot)
            if current is None or rank(job) > rank(current):
                live_by_window[slot] = job
            live_by_start.setdefault((window.report_type, window.start, job.file_type), []).append(
                (window, job)
            )
        adopted = []
        for entry in list(self.entries.values()):
            live = live_by_window.get((entry.window.key, entry.file_type))
            if entry.status in SUPERSEDED and live is not None and lost(by_id.get(entry.job_id or "")):
                # the entry's job FAILED or expired, but a run that died before its state was committed
                # submitted the window again: that job is the window's now (no request spent on another)
                self.adopted(entry, live)
                adopted.append(entry)
                continue
            if entry.status in (SUBMITTED, COMPLETE_NOT_LOADED) and entry.job_id not in by_id:
                self.failed(entry, f"job {entry.job_id} expired before its file was loaded")
            if entry.status not in (UNCERTAIN, OWED):
                continue
            if live is not None:
                if entry.status == OWED:
                    adopted.append(entry)
                self.adopted(entry, live)
            elif entry.status == UNCERTAIN:
                self.never_submitted(entry, "a submission met a server error and never reached the job list")
            elif part := earlier_part(
                entry, live_by_start.get((entry.window.report_type, entry.window.start, entry.file_type), [])
            ):
                adopted.append(self._adopt_part(entry, *part))
        return adopted

    def _adopt_part(self, entry: Entry, window: Window, job: ApiJob) -> Entry:
        """A live job covers the first part of an owed span (planned when less was over): adopt it
        for that part; the rest is owed as a span of its own."""
        del self.entries[entry.window.key]
        part = Entry(window, SUBMITTED, job_id=job.job_id, file_type=entry.file_type, attempts=1)
        rest = Window(window.end, entry.window.end, window.report_type)
        self.entries[part.window.key] = part
        self.entries[rest.key] = Entry(rest, OWED, file_type=entry.file_type)
        return part

    # --- the run as a whole -------------------------------------------------------------------

    def remember_timezone(self, zone: str) -> None:
        self._run["api_timezone"] = zone

    def finish(self, run_id: str, record: dict[str, Any]) -> None:
        """Write the entries, the run's id and its outcome back (dlt commits them with the load).

        Windows never submitted are left out: the next run plans them again from its own
        configuration (report types, window size, file type may have changed).
        """
        for report_type, table in REPORT_TABLES.items():
            kept = {
                key: e.to_state()
                for key, e in sorted(self.entries.items())
                if e.window.report_type == report_type and not (e.status == OWED and e.attempts == 0)
            }
            if kept or "windows" in self._resources.get(table, {}):
                self._resources.setdefault(table, {})["windows"] = kept
        self._run["run_id"] = run_id
        self._run["last_run"] = record


def _move_progress_to_tables(run: dict[str, Any], resources: dict[str, Any]) -> None:
    """State written before each table had a resource kept every type's progress in ``report_jobs``."""
    for report_type, value in run.pop("last_end", {}).items():
        resources.setdefault(REPORT_TABLES[report_type], {})["last_end"] = value
    for key, value in run.pop("windows", {}).items():
        table = REPORT_TABLES[window_from_key(key).report_type]
        resources.setdefault(table, {}).setdefault("windows", {})[key] = value
