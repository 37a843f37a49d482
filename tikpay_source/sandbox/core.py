"""``Sandbox``: the whole stand-in API, started on loopback and inspectable from tests."""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from tikpay_source.sandbox.api import API_PREFIX, TOKEN_PATH, ApiService
from tikpay_source.sandbox.clock import SandboxClock, parse_local
from tikpay_source.sandbox.data import REPORT_COLUMNS, ReportData
from tikpay_source.sandbox.downloads import DownloadService
from tikpay_source.sandbox.faults import Fault, FaultBook
from tikpay_source.sandbox.jobs import Job, JobStore, Resolution
from tikpay_source.sandbox.links import LinkSigner
from tikpay_source.sandbox.server import RequestLog, SandboxHTTPServer, start_server
from tikpay_source.sandbox.settings import DEMO_API_KEY, REPORT_TYPES, SandboxSettings
from tikpay_source.sandbox.storage import ReportFiles


class Sandbox:
    """A faithful local Tikpay Data API: an API+token server and a download server.

    Use it as a context manager (``with Sandbox() as sb:``) or call ``start``/``stop``.
    All time-dependent behaviour follows ``sb.clock``, which tests can ``advance``.
    """

    def __init__(self, settings: SandboxSettings | None = None) -> None:
        self.settings = settings or SandboxSettings()
        self.clock = SandboxClock(self.settings.start_clock)
        self._data = ReportData(self.settings.seed, self.settings.timezone, self.settings.rows_for)
        self._faults = FaultBook()
        self._jobs = JobStore(self.settings, self.clock, self._resolve)
        self._signer = LinkSigner(self.clock, self.settings.link_ttl_seconds)
        self._files = ReportFiles(self._data)
        self._api = ApiService(
            self.settings, self.clock, self._faults, self._jobs, self._signer, lambda: self.download_base_url
        )
        self._api_log = RequestLog()
        self._download_log = RequestLog()
        self._servers: list[SandboxHTTPServer] = []
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Bind both servers and serve them in background threads."""
        if self._servers:
            return self
        downloads = DownloadService(self._jobs, self._files, self._signer, self._faults)
        s = self.settings
        try:
            download_server = self._server((s.download_host, s.download_port), downloads, self._download_log)
        except OSError:  # 127.0.0.2 is not bindable everywhere (e.g. macOS): use another port instead
            download_server = self._server((s.host, s.download_port), downloads, self._download_log)
        try:
            api_server = self._server((s.host, s.port), self._api, self._api_log)
        except OSError:
            download_server.server_close()  # never served, so there is nothing to shut down
            raise
        self._servers = [download_server, api_server]
        self._threads = [start_server(server) for server in self._servers]
        return self

    def _server(self, address: tuple[str, int], service: Any, log: RequestLog) -> SandboxHTTPServer:
        return SandboxHTTPServer(address, service, self.clock, log, self.settings.verbose)

    def stop(self) -> None:
        """Stop serving, close the sockets and delete rendered report files."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []
        self._files.close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------

    def _url(self, index: int) -> str:
        if not self._servers:
            raise RuntimeError("the sandbox is not running; use it as a context manager or call start()")
        host, port = self._servers[index].server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """The API base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        return self._url(1) + API_PREFIX

    @property
    def token_url(self) -> str:
        """The OAuth2 token endpoint on the API server."""
        return self._url(1) + TOKEN_PATH

    @property
    def download_base_url(self) -> str:
        """Where pre-signed download links point (the object-storage stand-in)."""
        return self._url(0)

    # -- faults ----------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        """Switch a fault on; ``expire_token`` and ``expire_links`` act at once instead."""
        if fault.kind == "expire_token":
            self._api.tokens.expire_all()
        elif fault.kind == "expire_links":
            self._signer.expire_all()
        else:
            self._faults.add(fault)

    def clear_faults(self) -> None:
        """Switch every pending fault off."""
        self._faults.clear()

    def _resolve(self, job: Job) -> Resolution:
        if self._faults.take("job_failed", report_type=job.report_type) is not None:
            return Resolution("FAILED")
        if self._faults.take("no_data", report_type=job.report_type) is not None:
            return Resolution("NO_DATA")
        odd = self._faults.take("odd_status", report_type=job.report_type)
        if odd is not None:
            return Resolution(odd.job_status)
        if self._faults.take("no_link", report_type=job.report_type) is not None:
            return Resolution("COMPLETE", linkless=True)
        has_rows = self._data.has_rows(job.report_type, job.start_time, job.end_time)
        return Resolution("COMPLETE" if has_rows else "NO_DATA")

    # -- inspection ------------------------------------------------------------------------

    def ground_truth(self, report_type: str, start: str, end: str) -> list[dict[str, str]]:
        """The exact rows (file string values, "" for empty) a job for [start, end) would hold."""
        columns = self._check_window(report_type, start, end)
        return [dict(zip(columns, row, strict=True)) for row in self._data.rows(report_type, start, end)]

    def count_rows(self, report_type: str, start: str, end: str) -> int:
        """How many rows a job for [start, end) would hold, streamed (no rows kept)."""
        self._check_window(report_type, start, end)
        return self._data.count(report_type, start, end)

    def _check_window(self, report_type: str, start: str, end: str) -> tuple[str, ...]:
        if report_type not in REPORT_TYPES:
            raise ValueError(f"unknown report type {report_type!r}")
        for text in (start, end):
            parse_local(text)  # raises ValueError for anything but YYYY-MM-DDTHH:MM:SS
        return REPORT_COLUMNS[report_type]

    def jobs(self) -> list[dict[str, Any]]:
        """Every job, expired ones included, as copies: the API fields plus ``expired`` and ``listCalls``.

        ``downloadUrl`` is the link the latest list call handed out (absent if none was).
        """
        now = self.clock.time()
        return [
            {
                **self._jobs.to_api(job, job.download_url),
                "expired": now >= job.expires,
                "listCalls": job.list_calls,
            }
            for job in self._jobs.all()
        ]

    def submissions(self, report_type: str | None = None) -> list[dict[str, str]]:
        """Accepted generate-report bodies (normalised, ``fileType`` filled in) in order."""
        return [s for s in self._api.submissions() if report_type in (None, s["reportType"])]

    def quota_used(self, api_key: str = DEMO_API_KEY) -> int:
        """Requests of ``api_key`` counted in the current rolling quota window."""
        return self._api.quota.used(api_key)

    def quota_refused(self, api_key: str = DEMO_API_KEY) -> int:
        """Requests of ``api_key`` the real quota refused (429): more than the limit in one window."""
        return self._api.quota.refused(api_key)

    @property
    def api_requests(self) -> list[dict[str, Any]]:
        """Requests to the API server (token calls included): method, path, status, headers.

        Header names are lower-cased.
        """
        return self._api_log.snapshot()

    @property
    def download_requests(self) -> list[dict[str, Any]]:
        """Requests to the download server: method, path, status, lower-cased headers."""
        return self._download_log.snapshot()

    def report_file(self, job_id: str) -> Path:
        """Path of the (undamaged) file a COMPLETE job serves, rendering it if needed."""
        job = next((j for j in self._jobs.all() if j.job_id == job_id), None)
        if job is None:
            raise KeyError(job_id)
        if job.status != "COMPLETE":
            raise ValueError(f"job {job_id} is {job.status}; only COMPLETE jobs have a file")
        return self._files.path(job)
