"""Getting a COMPLETE job's file ready to load: downloaded, checked whole, its columns' types settled.

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

from tikpay_source.api.download import download_report
from tikpay_source.api.models import ApiJob
from tikpay_source.columns.memory import ColumnTypeMemory
from tikpay_source.errors import LinkExpired, ReportFileError, WideningRefused, WidenNextRun
from tikpay_source.files.readers import ReportFile, open_report
from tikpay_source.loading.destinations import DestinationProfile
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
                report = open_report(path, job.file_type, self._timezone, known_types=known, discard=True)
            except ReportFileError as exc:
                problem = str(exc)
                if digest in digests:  # the same bytes again: it is the file, not the transfer
                    return Problem(BAD_FILE, problem, digest)
                digests.append(digest)
                continue
            try:
                self.column_types.adopt(window.report_type, report)
            except WidenNextRun as exc:
                report.close()
                log.info("%s: %s", window.describe(), exc)
                return Problem(LATER)
            except WideningRefused as exc:
                report.close()
                return Problem(DESTINATION_REFUSED, str(exc))
            return Fetched(report, size)
        return Problem(BAD_FILE, problem)

    def loaded(self, report_type: str, report: ReportFile) -> None:
        """The report's rows are handed to dlt: later files of the type are read with its types."""
        self.column_types.loaded(report_type, report)


def _sha256(path: Path) -> str:
    """The file's SHA-256, read in blocks (a report may be larger than memory)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
