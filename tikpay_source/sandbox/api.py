"""The API host: token endpoint, report submission and the job list.

Each request passes the same gates in the same order, which is what makes the quota
rules precise: optional slowness, authentication (401, never counted), a simulated
exhausted quota, the real quota (429, never counted), then counted work that may still
be turned into a 5xx by a ``status`` fault.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, urlsplit

from tikpay_source.sandbox.auth import TokenStore, client_authenticated
from tikpay_source.sandbox.clock import SandboxClock
from tikpay_source.sandbox.faults import Fault, FaultBook
from tikpay_source.sandbox.jobs import JobStore
from tikpay_source.sandbox.links import LinkSigner
from tikpay_source.sandbox.quota import Quota, format_retry_after
from tikpay_source.sandbox.responses import Response, api_error, json_response, oauth_error
from tikpay_source.sandbox.settings import SandboxSettings
from tikpay_source.sandbox.validation import InvalidRequest, parse_generate_request

API_PREFIX = "/v1"
TOKEN_PATH = "/oauth2/token"
SUBMIT_PATH = f"{API_PREFIX}/generate-report"
LIST_PATH = f"{API_PREFIX}/report-jobs-list"
_ROUTES = {TOKEN_PATH: ("POST", "token"), SUBMIT_PATH: ("POST", "submit"), LIST_PATH: ("GET", "list")}


class ApiService:
    """Answers requests to the API host; shared by all server threads."""

    def __init__(
        self,
        settings: SandboxSettings,
        clock: SandboxClock,
        faults: FaultBook,
        jobs: JobStore,
        signer: LinkSigner,
        download_base_url: Callable[[], str],
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._faults = faults
        self._jobs = jobs
        self._signer = signer
        self._download_base_url = download_base_url
        self.tokens = TokenStore(clock, settings.token_ttl_seconds)
        self.quota = Quota(settings.quota_limit, settings.quota_window_seconds, clock)
        self._lock = threading.Lock()
        self._submissions: list[dict[str, str]] = []

    def submissions(self) -> list[dict[str, str]]:
        """Accepted generate-report bodies, normalised, in arrival order."""
        with self._lock:
            return [dict(body) for body in self._submissions]

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Route one request (``headers`` keyed in lower case) and produce its answer."""
        path = urlsplit(target).path.rstrip("/") or "/"
        route = _ROUTES.get(path)
        if route is None:
            return api_error(404, f"no such resource: {path}")
        expected_method, endpoint = route
        if method != expected_method:
            return api_error(405, f"{path} accepts {expected_method} only", {"Allow": expected_method})
        slow = self._faults.take("slow", endpoint)
        if slow is not None:
            time.sleep(slow.delay)
        if endpoint == "token":
            return self._token(headers, body)
        refused = self._gate(endpoint, headers)
        if refused is not None:
            return refused
        fault = self._faults.take("status", endpoint)
        if fault is not None:
            return self._status_fault(fault)
        answer = self._submit(body) if endpoint == "submit" else self._list()
        cut = self._faults.take("cut_answer", endpoint)  # the API acted; its answer is cut short on the wire
        if cut is not None:
            answer.drop_after = cut.after_bytes
        return answer

    def _gate(self, endpoint: str, headers: Mapping[str, str]) -> Response | None:
        problem = self.tokens.problem(headers.get("authorization"))
        if problem is not None:
            return api_error(401, problem)
        api_key = headers.get("x-api-key")
        if api_key not in self._settings.api_keys:
            return api_error(401, "invalid x-api-key" if api_key else "missing x-api-key")
        exhausted = self._faults.take("quota_exhausted", endpoint)
        if exhausted is not None:
            wait = exhausted.retry_after
            return self._too_many(self._settings.quota_window_seconds if wait is None else wait)
        wait = self.quota.acquire(api_key)
        return None if wait is None else self._too_many(wait)

    def _too_many(self, wait: float) -> Response:
        retry_after = format_retry_after(wait, self._clock.time(), self._settings.retry_after_format)
        message = f"quota of {self._settings.quota_limit} requests per window exceeded"
        return api_error(429, message, {"Retry-After": retry_after})

    def _status_fault(self, fault: Fault) -> Response:
        headers = {}
        if fault.status == 503 and fault.retry_after is not None:
            headers["Retry-After"] = format_retry_after(
                fault.retry_after, self._clock.time(), self._settings.retry_after_format
            )
        return api_error(fault.status, f"simulated failure (HTTP {fault.status})", headers)

    def _token(self, headers: Mapping[str, str], body: bytes) -> Response:
        fault = self._faults.take("status", "token")
        if fault is not None:
            return oauth_error(fault.status, "server_error", "simulated failure")
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if not client_authenticated(headers.get("authorization"), form, self._settings):
            challenge = {"WWW-Authenticate": 'Basic realm="tikpay-sandbox"'}
            return oauth_error(401, "invalid_client", "client authentication failed", challenge)
        grant_type = form.get("grant_type")
        if grant_type is None:
            return oauth_error(400, "invalid_request", "grant_type is required")
        if grant_type != "client_credentials":
            return oauth_error(400, "unsupported_grant_type", "only client_credentials is supported")
        answer = {
            "access_token": self.tokens.issue(),
            "token_type": "Bearer",
            "expires_in": int(self._settings.token_ttl_seconds),
        }
        if form.get("scope"):
            answer["scope"] = form["scope"]
        return json_response(200, answer, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _submit(self, body: bytes) -> Response:
        try:
            params = parse_generate_request(body)
        except InvalidRequest as exc:
            return api_error(400, str(exc))
        job = self._jobs.submit(
            params["reportType"], params["fileType"], params["startTime"], params["endTime"]
        )
        with self._lock:
            self._submissions.append(params)
        return json_response(200, {"jobId": job.job_id, "status": job.status})

    def _list(self) -> Response:
        listed = []
        for job in self._jobs.list_and_advance():
            url = None
            if job.status == "COMPLETE":
                path = f"/reports/{job.job_id}.{job.file_type}"
                url = f"{self._download_base_url()}{path}?{self._signer.sign(path)}"
                self._jobs.note_link(job.job_id, url)
            listed.append(self._jobs.to_api(job, url))
        return json_response(200, listed)
