"""Report files on disk: rendered once per job and variant, cached, removed at shutdown.

Rendering happens lazily on the first download so that listing a million-row job stays
fast, and a per-file lock makes concurrent first downloads render only once.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from tikpay_source.sandbox.data import REPORT_COLUMNS, ReportData
from tikpay_source.sandbox.files import write_report, write_truncated_copy
from tikpay_source.sandbox.jobs import Job

GOOD = "good"
TRUNCATED = "truncate"
MALFORMED = "malformed_row"
VARIANTS = (GOOD, TRUNCATED, MALFORMED)


class FilesClosed(RuntimeError):
    """The sandbox stopped; a request still in flight must not render into a new directory."""


class ReportFiles:
    """A temporary directory of rendered reports keyed by job id and variant."""

    def __init__(self, data: ReportData) -> None:
        self._data = data
        self._dir: Path | None = None  # created on first render, so an unused sandbox leaves nothing
        self._closed = False
        self._lock = threading.Lock()
        self._file_locks: dict[tuple[str, str], threading.Lock] = {}
        self._row_counts: dict[str, int] = {}

    def path(self, job: Job, variant: str = GOOD) -> Path:
        """The rendered file of ``job`` (damaged as ``variant`` says), rendering it if needed."""
        if variant not in VARIANTS:
            raise ValueError(f"unknown file variant {variant!r}")
        with self._lock:
            if self._closed:
                raise FilesClosed("the sandbox has stopped")
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="tikpay-sandbox-"))
            target = self._dir / f"{job.job_id}.{variant}.{job.file_type}"
            file_lock = self._file_locks.setdefault((job.job_id, variant), threading.Lock())
        with file_lock:
            if not target.exists():
                self._render(job, variant, target)
        return target

    def _render(self, job: Job, variant: str, target: Path) -> None:
        partial = target.with_suffix(target.suffix + ".part")  # never serve a half-written file
        if variant == TRUNCATED:
            write_truncated_copy(self.path(job), partial)
        else:
            malformed_at = None
            if variant == MALFORMED:
                self.path(job)  # the good file knows the row count; damage the middle row
                malformed_at = self._row_counts[job.job_id] // 2
            rows = self._data.rows(job.report_type, job.start_time, job.end_time)
            columns = REPORT_COLUMNS[job.report_type]
            count = write_report(partial, job.file_type, job.report_type, columns, rows, malformed_at)
            if variant == GOOD:
                with self._lock:
                    self._row_counts[job.job_id] = count
        partial.replace(target)

    def close(self) -> None:
        """Delete every rendered file."""
        with self._lock:
            self._closed = True
            directory, self._dir = self._dir, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
