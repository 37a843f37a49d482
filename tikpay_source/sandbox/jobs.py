"""Report jobs: their store, their lifecycle and their API representation.

A job is IN_PROGRESS until both completion conditions hold (enough list calls since
submission and enough sandbox-clock time), then resolves once to COMPLETE, NO_DATA or
FAILED. Resolution happens lazily on list calls, as a client only ever learns a job's
state by listing. Jobs vanish job_ttl_days after creation.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from ulid import ULID

from tikpay_source.sandbox.clock import SandboxClock, format_local
from tikpay_source.sandbox.settings import SandboxSettings


@dataclass
class Job:
    """One submitted report job; ``created``/``completed``/``expires`` are epoch seconds."""

    job_id: str
    report_type: str
    file_type: str
    start_time: str
    end_time: str
    created: float
    expires: float
    status: str = "IN_PROGRESS"
    completed: float | None = None
    list_calls: int = 0  # list calls that have seen this job while it was in progress
    download_url: str | None = None  # the link most recently handed out by a list call
    linkless: bool = False  # a "no_link" fault: COMPLETE, but listed without a downloadUrl


@dataclass(frozen=True)
class Resolution:
    """How a job ends: its final status, and whether the list leaves out its download link."""

    status: str
    linkless: bool = False


class JobStore:
    """Every job of a sandbox, thread-safe, with lifecycle driven by list calls."""

    def __init__(
        self, settings: SandboxSettings, clock: SandboxClock, resolve: Callable[[Job], Resolution]
    ) -> None:
        """``resolve`` decides how a job ends (COMPLETE, NO_DATA, FAILED, or a fault's odd status)."""
        self._settings = settings
        self._clock = clock
        self._tz = ZoneInfo(settings.timezone)
        self._resolve = resolve
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}

    def submit(self, report_type: str, file_type: str, start_time: str, end_time: str) -> Job:
        """Create an IN_PROGRESS job with a fresh ULID."""
        now = self._clock.time()
        job = Job(
            job_id=str(ULID()),
            report_type=report_type,
            file_type=file_type,
            start_time=start_time,
            end_time=end_time,
            created=now,
            expires=now + self._settings.job_ttl_days * 86400,
        )
        with self._lock:
            self._jobs[job.job_id] = job
        return dataclasses.replace(job)

    def list_and_advance(self) -> list[Job]:
        """What a list call sees: unexpired jobs, in-progress ones advanced one step first."""
        now = self._clock.time()
        visible: list[Job] = []
        with self._lock:
            for job in self._jobs.values():
                if now >= job.expires:
                    continue
                if job.status == "IN_PROGRESS":
                    self._advance(job, now)
                visible.append(dataclasses.replace(job))
        return visible

    def _advance(self, job: Job, now: float) -> None:
        due_calls = job.list_calls >= self._settings.complete_after_list_calls
        due_time = now - job.created >= self._settings.complete_after_seconds
        if due_calls and due_time:
            resolution = self._resolve(dataclasses.replace(job))
            job.status, job.linkless = resolution.status, resolution.linkless
            job.completed = now
        else:
            job.list_calls += 1

    def note_link(self, job_id: str, url: str) -> None:
        """Remember the link a list call handed out, so tests can see what the client saw."""
        with self._lock:
            self._jobs[job_id].download_url = url

    def get(self, job_id: str) -> Job | None:
        """The job with this id if it exists and has not expired."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or self._clock.time() >= job.expires:
                return None
            return dataclasses.replace(job)

    def all(self) -> list[Job]:
        """Every job ever submitted, expired ones included, as copies."""
        with self._lock:
            return [dataclasses.replace(job) for job in self._jobs.values()]

    def to_api(self, job: Job, download_url: str | None) -> dict[str, str]:
        """The job as report-jobs-list writes it: local naive times, optional fields omitted."""
        body = {
            "jobId": job.job_id,
            "status": job.status,
            "timezone": self._settings.timezone,
            "fileType": job.file_type,
            "reportType": job.report_type,
            "startTime": job.start_time,
            "endTime": job.end_time,
            "createdAt": format_local(job.created, self._tz),
            "expiresAt": format_local(job.expires, self._tz),
        }
        if job.completed is not None:
            body["completedAt"] = format_local(job.completed, self._tz)
        if download_url is not None and job.status == "COMPLETE" and not job.linkless:
            body["downloadUrl"] = download_url
        return body
