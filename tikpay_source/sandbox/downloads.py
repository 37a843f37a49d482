"""The object-storage stand-in that serves finished reports through pre-signed links.

It lives on its own address and port, needs no credentials (and records the headers it
receives so tests can prove none were sent), answers refusals like S3 does, and can
slow, fail, cut off or damage a download on request.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

from tikpay_source.sandbox.faults import FaultBook
from tikpay_source.sandbox.files import CONTENT_TYPES
from tikpay_source.sandbox.jobs import JobStore
from tikpay_source.sandbox.links import EXPIRED, LinkSigner
from tikpay_source.sandbox.responses import Response, s3_error
from tikpay_source.sandbox.storage import GOOD, MALFORMED, TRUNCATED, FilesClosed, ReportFiles

_REPORT_PATH = re.compile(r"/reports/(?P<job_id>[0-9A-Z]{26})\.(?P<ext>csv|xml)")


class DownloadService:
    """Answers requests to the download host."""

    def __init__(self, jobs: JobStore, files: ReportFiles, signer: LinkSigner, faults: FaultBook) -> None:
        self._jobs = jobs
        self._files = files
        self._signer = signer
        self._faults = faults

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Serve ``GET``/``HEAD /reports/<jobId>.<ext>?expires=..&signature=..``."""
        slow = self._faults.take("slow", "download")
        if slow is not None:
            time.sleep(slow.delay)
        failure = self._faults.take("status", "download")
        if failure is not None:
            return s3_error(failure.status, "InternalError", "simulated failure")
        if method not in ("GET", "HEAD"):
            return s3_error(
                405, "MethodNotAllowed", "The specified method is not allowed against this resource."
            )
        parts = urlsplit(target)
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        problem = self._signer.problem(parts.path, query.get("expires"), query.get("signature"))
        if problem is not None:
            code = "AccessDenied" if problem == EXPIRED else "SignatureDoesNotMatch"
            return s3_error(403, code, problem)
        match = _REPORT_PATH.fullmatch(parts.path)
        job = self._jobs.get(match["job_id"]) if match else None
        if job is None or job.status != "COMPLETE" or match["ext"] != job.file_type:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        content = self._faults.take("content", "download", job.report_type)
        if content is not None:  # a test's own file body, served as the job's file
            headers = {"Content-Type": CONTENT_TYPES[job.file_type], "Content-Length": str(len(content.body))}
            return Response(200, headers, content.body if method == "GET" else b"")
        variant = GOOD
        if self._faults.take("truncate", "download") is not None:
            variant = TRUNCATED
        elif self._faults.take("malformed_row", "download") is not None:
            variant = MALFORMED
        try:
            path = self._files.path(job, variant)
        except FilesClosed:
            return s3_error(503, "ServiceUnavailable", "The sandbox is shutting down.")
        drop = self._faults.take("drop", "download")
        return Response(
            200,
            {"Content-Type": CONTENT_TYPES[job.file_type], "Content-Length": str(path.stat().st_size)},
            file=path,
            drop_after=None if drop is None else drop.after_bytes,
        )
