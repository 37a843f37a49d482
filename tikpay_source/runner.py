"""One run of the ``report_jobs`` resource: adopt, submit, wait, download, load.

The order of operations is what keeps the quota and the data safe:

1. plan the windows owed since ``last_end`` (no request);
2. one job-list call finds jobs already submitted for those windows (a crashed run's,
   say) and adopts them, and tells the status of every job in flight;
3. submit what is left, oldest window first, within the run's request budget;
4. poll with one list call for all jobs at once, every ``poll_interval`` up to ``max_wait``;
5. each COMPLETE job's file is streamed to disk, read into Arrow batches and yielded,
   then its window is marked loaded so dlt commits rows and state together.

A quota stop or an error of the whole run ends it cleanly: what was downloaded is
still loaded and the state saved; ``last_run`` in the state says what happened.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tikpay_source.client import ApiJob, SubmissionUncertain, TikpayClient
from tikpay_source.config import TikpayConfig
from tikpay_source.download import download_report
from tikpay_source.errors import (
    ApiError,
    BudgetSpent,
    ConfigError,
    LinkExpired,
    QuotaExhausted,
    ReadInterrupted,
    ReportFileError,
    TikpayError,
)
from tikpay_source.jobs import RETRY, SUBMITTED, Entry, WindowBook
from tikpay_source.outcome import RunOutcome
from tikpay_source.planning import plan_run
from tikpay_source.progress import Progress
from tikpay_source.quota import open_ledger
from tikpay_source.readers import read_report
from tikpay_source.settings import MAX_DOWNLOAD_ATTEMPTS, REPORT_TABLES
from tikpay_source.tables import ColumnTypeMemory, job_row, report_batch
from tikpay_source.windows import format_local


class ReportJobRunner:
    """Drives one run; a generator of dlt items (job rows and report batches)."""

    def __init__(
        self,
        config: TikpayConfig,
        state: dict[str, Any],
        *,
        progress: Progress | None = None,
        retry_failed: bool = False,
    ) -> None:
        self.config = config
        self.book = WindowBook(state, config)
        self.state = state
        self.progress = progress or Progress()
        self.retry_failed = retry_failed
        self.outcome = RunOutcome()
        self.run_id = uuid.uuid4().hex
        # windows whose file failed to load in this run: left for the next run, not polled for
        self._deferred: set[str] = set()
        self._expired_links: set[str] = set()
        self._column_types = ColumnTypeMemory()

    def run(self) -> Iterator[Any]:
        """Yield every item of this run, then save the book and the run's outcome in the state."""
        ledger = open_ledger(self.config.ledger_dir, self.config.credentials.api_key)
        client = TikpayClient(
            self.config.base_url,
            self.config.token_url,
            self.config.credentials,
            ledger,
            token_auth=self.config.token_auth,
            max_retry_wait=self.config.max_retry_wait,
        )
        try:
            with tempfile.TemporaryDirectory(prefix="tikpay-") as scratch:
                yield from self._run(client, Path(scratch))
        except ReadInterrupted:
            raise  # the extract must fail, or the rows already handed to dlt would load
        except BudgetSpent as exc:
            self.progress.step(f"{exc}; what is left waits for the next run")
        except QuotaExhausted as exc:
            self.outcome.stop("quota", str(exc), exc.retry_at)
            self.progress.step(f"stopped for quota: {exc}")
        except ConfigError as exc:
            self.outcome.stop("config", str(exc))
            self.progress.step(f"stopped: {exc}")
        except TikpayError as exc:
            self.outcome.stop("error", str(exc))
            self.progress.step(f"stopped: {exc}")
        finally:
            client.close()
            self.book.save()
            self.state["run_id"] = self.run_id
            self.state["last_run"] = self.outcome.to_state(
                requests=client.requests_sent,
                quota_left=ledger.remaining(),
                pending=[e.window.describe() for e in sorted(self.book.in_flight(), key=lambda e: e.window)],
                waiting=[e.window.describe() for e in self.book.to_submit()],
                gave_up=[f"{e.window.describe()}: {e.error}" for e in self.book.gave_up()],
            )

    # --- the steps ----------------------------------------------------------------------

    def _run(self, client: TikpayClient, scratch: Path) -> Iterator[Any]:
        if self.retry_failed:
            self.book.retry_gave_up()
        self._check_timezone()
        plan = plan_run(
            self.book, self.config, client.ledger, self.state.get("run_id"), "api_timezone" in self.state
        )
        client.ledger.record_run(self.run_id)
        client.max_requests = plan.budget
        if not plan.windows and not plan.in_flight:
            self.progress.step("nothing new to load: every window up to the end bound is loaded")
            return
        if plan.budget <= 0:
            free_at = client.ledger.next_free_at()
            retry_at = datetime.fromtimestamp(free_at, timezone.utc) if free_at else None
            raise QuotaExhausted(
                "no requests left in this API key's 24-hour quota by the local ledger", retry_at
            )
        deadline = time.monotonic() + self.config.max_wait
        if plan.adoption_check or plan.in_flight or not plan.windows:
            yield from self._poll(client, scratch)  # adopt an interrupted run's jobs; collect finished ones
        while True:
            yield from self._submit_waiting(client, plan.budget)
            if not self._worth_polling():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0 or client.requests_sent >= plan.budget:
                return
            time.sleep(min(self.config.poll_interval, remaining))
            yield from self._poll(client, scratch)

    def _poll(self, client: TikpayClient, scratch: Path) -> Iterator[Any]:
        """One list call: adopt jobs for waiting windows, learn every job's status, load finished ones."""
        jobs = client.list_jobs()
        self._check_timezone(jobs)
        waiting = {e.window.key for e in self.book.to_submit()}
        self.book.reconcile(jobs)
        by_id = {job.job_id: job for job in jobs}
        for entry in sorted(self.book.entries.values(), key=lambda e: (e.window.start, e.window.report_type)):
            job = by_id.get(entry.job_id or "")
            if entry.status != SUBMITTED or job is None or entry.window.key in self._deferred:
                continue
            if entry.window.key in waiting:
                self.outcome.adopted += 1
                self.progress.step(
                    f"adopted job {job.job_id} already submitted for {entry.window.describe()}"
                )
            yield from self._settle(entry, job, scratch)
        pending = len(self._worth_polling())
        if pending:
            self.progress.step(f"{pending} job(s) still in progress")

    def _worth_polling(self) -> list[Entry]:
        """Jobs in flight that this run can still finish (not those whose file already failed here)."""
        return [e for e in self.book.in_flight() if e.window.key not in self._deferred]

    def _settle(self, entry: Entry, job: ApiJob, scratch: Path) -> Iterator[Any]:
        zone = self.config.timezone
        if job.status == "COMPLETE":
            yield from self._load(entry, job, scratch)
        elif job.status == "NO_DATA":
            self.book.loaded(entry)
            self.outcome.windows_loaded += 1
            self.progress.step(f"{entry.window.describe()}: no data (job {job.job_id})")
            yield job_row(entry, zone, load_status="no_data", job=job, rows_loaded=0)
        elif job.status == "FAILED":
            self.book.fail(entry, f"job {job.job_id} FAILED at Tikpay")
            self.progress.step(
                f"{entry.window.describe()}: job {job.job_id} FAILED; {self._next_step(entry)}"
            )
            yield job_row(entry, zone, load_status="failed", job=job)
        elif job.status != "IN_PROGRESS":
            entry.error = f"job {job.job_id} has an unknown status {job.status!r}"
            self.outcome.window_errors.append(f"{entry.window.describe()}: {entry.error}")

    def _next_step(self, entry: Entry) -> str:
        if entry.status == SUBMITTED:
            return "waiting"
        return "it will be submitted again" if entry.status == RETRY else "giving up after repeated failures"

    def _load(self, entry: Entry, job: ApiJob, scratch: Path) -> Iterator[Any]:
        """Download the job's file and yield its rows; a broken download is retried (it costs no quota)."""
        if not job.download_url:
            entry.error = f"job {job.job_id} is COMPLETE but has no downloadUrl"
            self.outcome.window_errors.append(f"{entry.window.describe()}: {entry.error}")
            return
        problem = ""
        for _attempt in range(MAX_DOWNLOAD_ATTEMPTS):
            label = f"downloading {entry.window.describe()}"
            self.progress.reset_transfer()
            try:
                path = download_report(
                    job.download_url,
                    scratch,
                    suffix=job.file_type,
                    progress=lambda done, total, label=label: self.progress.transfer(label, done, total),
                )
            except LinkExpired as exc:
                if entry.window.key not in self._expired_links:
                    self._expired_links.add(entry.window.key)
                    self.progress.step(
                        f"{entry.window.describe()}: {exc}; the next job list signs a fresh one"
                    )
                    return
                problem = str(exc)
                break
            except ReportFileError as exc:
                problem = str(exc)
                continue
            rows = 0
            try:
                size = path.stat().st_size
                known_types = self._column_types.lookup(entry.window.report_type)
                for batch in read_report(
                    path, job.file_type, self.config.timezone.key, known_types=known_types
                ):
                    rows += batch.num_rows
                    self._column_types.remember(entry.window.report_type, batch)
                    yield report_batch(batch, entry, job.job_id)
            except ReportFileError as exc:
                if rows:
                    raise ReadInterrupted(
                        f"{entry.window.describe()}: job {job.job_id}'s file failed after {rows} of its rows "
                        f"were handed to dlt ({exc}); nothing of this run is loaded, the next run loads it again"
                    ) from None
                problem = str(exc)
                continue
            finally:
                path.unlink(missing_ok=True)
            self.book.loaded(entry)
            table = REPORT_TABLES[entry.window.report_type]
            self.outcome.rows[table] = self.outcome.rows.get(table, 0) + rows
            self.outcome.windows_loaded += 1
            self.progress.step(f"{entry.window.describe()}: loaded {rows} rows (job {job.job_id})")
            yield job_row(
                entry, self.config.timezone, load_status="loaded", job=job, rows_loaded=rows, file_size=size
            )
            return
        entry.error = f"job {job.job_id}: {problem}"
        self._deferred.add(entry.window.key)
        self.outcome.window_errors.append(
            f"{entry.window.describe()}: {entry.error}; the next run tries again"
        )
        self.progress.step(f"{entry.window.describe()}: {entry.error}; the next run tries again")
        yield job_row(entry, self.config.timezone, load_status="error", job=job)

    def _submit_waiting(self, client: TikpayClient, budget: int) -> Iterator[Any]:
        """Submit waiting windows, oldest first, keeping one request back to learn how they went."""
        reserve = 1 if self.config.max_wait > 0 else 0
        for entry in self.book.to_submit():
            if client.requests_sent + reserve >= budget:
                self.progress.step(
                    f"request budget reached; {len(self.book.to_submit())} window(s) left for the next run"
                )
                return
            start, end = entry.window.start, entry.window.end
            try:
                job_id = client.submit(
                    entry.window.report_type, format_local(start), format_local(end), entry.file_type
                )
            except SubmissionUncertain as exc:
                self.book.submitted(entry, None)
                self.progress.step(
                    f"{entry.window.describe()}: submission unclear ({exc}); the next job list decides"
                )
                continue
            except ApiError as exc:  # refused (400): this window only, with its attempts counted
                entry.attempts += 1
                self.book.fail(entry, str(exc))  # reported by the summary if it keeps failing
                self.progress.step(f"{entry.window.describe()}: {exc}; {self._next_step(entry)}")
                continue
            self.book.submitted(entry, job_id)
            self.outcome.submitted += 1
            self.progress.step(f"submitted {entry.window.describe()} as job {job_id}")
            yield job_row(entry, self.config.timezone, load_status="submitted")

    def _check_timezone(self, jobs: list[ApiJob] = ()) -> None:
        """Windows planned in the wrong zone would shift every row: stop before submitting any.

        The zone the job list reports is remembered in the state, so later runs check it
        before their first request, even when they submit before listing.
        """
        zones = sorted({job.timezone for job in jobs if job.timezone})
        if zones:
            self.state["api_timezone"] = zones[0]
        reported = self.state.get("api_timezone")
        configured = self.config.timezone.key
        if reported and reported != configured:
            raise ConfigError(
                f"timezone is set to {configured} but the API reports the operator's timezone as "
                f"{reported}; set timezone to match"
            )
