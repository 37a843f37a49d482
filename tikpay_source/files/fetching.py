"""Getting a COMPLETE job's file ready to load: downloaded, checked whole, its columns' types settled.

For a destination that loads files as they are, "checked" includes writing that file
(see :mod:`tikpay_source.loading.exports`): the write proves the types the sample suggests.

Downloads cost no quota, so a broken one is tried again (up to ``MAX_DOWNLOAD_ATTEMPTS``);
a link refused for the first time waits for the fresh one the next job list signs; a
column whose loaded type the file's values no longer fit is widened first where the
destination can (see :mod:`tikpay_source.columns.widening`). The runner gets back either a :class:`ReportFile` to hand
to its table, or a :class:`Problem` saying what to do with the window instead.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import dlt
from dlt.common.pipeline import current_pipeline

from tikpay_source.api.download import download_report
from tikpay_source.api.models import ApiJob
from tikpay_source.columns.deciding import ColumnTypes
from tikpay_source.columns.memory import ColumnTypeMemory
from tikpay_source.errors import LinkExpired, ReportFileError, WideningRefused, WidenNextRun
from tikpay_source.files.readers import ReportFile, open_report
from tikpay_source.loading.destinations import DestinationProfile, ReadyFile
from tikpay_source.loading.exports import FileTarget, ReadyFiles, remove_leftovers, write_ready_files
from tikpay_source.planning.windows import Window
from tikpay_source.progress import transfer_reporter
from tikpay_source.settings import LOGGER_NAME, MAX_DOWNLOAD_ATTEMPTS

log = logging.getLogger(LOGGER_NAME)

# What a Problem asks of the window:
WAIT_FOR_LINK = "wait_for_link"  # the link was refused once: the next list in this run signs a fresh one
LINK_REFUSED = "link_refused"  # refused again: not the file's fault, the next run tries again
BAD_FILE = "bad_file"  # the file stayed bad: submit a new job next run, like a FAILED one
LATER = "later"  # a widening must wait for this run's rows to load: the next run loads the window
DESTINATION_REFUSED = "destination_refused"  # the destination cannot widen a column: same job, next run


@dataclass(frozen=True)
class Fetched:
    report: ReportFile
    size: int
    files: ReadyFiles | None = None
    """The files DuckDB wrote of the report for a destination that loads them as they are."""


@dataclass(frozen=True)
class Problem:
    kind: str
    reason: str = ""
    digest: str | None = None
    """For a bad file: the SHA-256 of its bytes, when two downloads gave the same bad file."""


class ReportFetcher:
    """Fetches the files of one run; remembers links refused and the column types seen so far."""

    def __init__(self, timezone: str, scratch: Path, profile: DestinationProfile) -> None:
        self._timezone = timezone
        self._scratch = scratch
        self._table_file = profile.table_file
        self._target: FileTarget | None = None
        self._refused_links: set[str] = set()
        self.column_types = ColumnTypeMemory(timezone, profile)

    def fetch(self, window: Window, job: ApiJob) -> Fetched | Problem:
        """The job's file, checked whole and ready to stream, or what went wrong."""
        assert job.download_url is not None
        problem = ""
        digests: list[str] = []
        for _attempt in range(MAX_DOWNLOAD_ATTEMPTS):
            progress = transfer_reporter(f"downloading {window.describe()}")
            try:
                path = download_report(
                    job.download_url, self._scratch, suffix=job.file_type, progress=progress
                )
            except LinkExpired as exc:
                if window.key in self._refused_links:
                    return Problem(LINK_REFUSED, str(exc))
                self._refused_links.add(window.key)
                log.info("%s: %s; the next job list signs a fresh one", window.describe(), exc)
                return Problem(WAIT_FOR_LINK)
            except ReportFileError as exc:
                problem = str(exc)
                continue
            size = path.stat().st_size
            known = self.column_types.lookup(window.report_type)
            digest = _sha256(path)
            try:
                report, files = self._read(path, window, job, known)
            except ReportFileError as exc:
                problem = str(exc)
                if digest in digests:  # the same bytes again: it is the file, not the transfer
                    return Problem(BAD_FILE, problem, digest)
                digests.append(digest)
                continue
            try:
                self.column_types.adopt(window.report_type, report)
            except BaseException as exc:
                report.close()
                if files is not None:
                    files.close()
                if isinstance(exc, WideningRefused):
                    return Problem(DESTINATION_REFUSED, str(exc))
                if not isinstance(exc, WidenNextRun):
                    raise
                log.info("%s: %s", window.describe(), exc)
                return Problem(LATER)
            return Fetched(report, size, files)
        return Problem(BAD_FILE, problem)

    def _read(
        self, path: Path, window: Window, job: ApiJob, known: ColumnTypes
    ) -> tuple[ReportFile, ReadyFiles | None]:
        """The downloaded file checked whole and, for a destination that loads files as they are, written.

        Such a file is checked as it is written (:func:`write_ready_files`): the types the
        sample suggests are proved on every value, so the file is read twice only on a miss.
        """
        table_file = self._table_file
        report = open_report(
            path, job.file_type, self._timezone, known_types=known, discard=True, guess=table_file is not None
        )
        if table_file is None or not report.columns:
            return report, None
        try:
            return report, write_ready_files(report, window, job.job_id, self._file_target(table_file))
        except BaseException:
            report.close()
            raise

    def _file_target(self, ready: ReadyFile) -> FileTarget:
        """Where this run writes its files (the running pipeline's working directory); the first call clears it."""
        if self._target is None:
            working_dir = getattr(current_pipeline(), "working_dir", None)
            directory = Path(working_dir) if working_dir else None
            if directory is not None:
                remove_leftovers(directory)
            self._target = FileTarget(ready, dlt.current.source_schema().naming, self._timezone, directory)
        return self._target

    def loaded(self, report_type: str, report: ReportFile) -> None:
        """The report's rows are handed to dlt: later files of the type are read with its types."""
        self.column_types.loaded(report_type, report)


def _sha256(path: Path) -> str:
    """The file's SHA-256, read in blocks (a report may be larger than memory)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
