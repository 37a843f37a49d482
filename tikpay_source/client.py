"""The Data API client: OAuth2 token, x-api-key, and a retry policy that respects the quota.

dlt's stock ``requests`` helper retries POSTs on 429 and 5xx, which would repeat a
submission behind the budget's back. This client uses a plain ``requests`` session and
its own rules instead:

* every request carrying the API key is written to the :class:`RequestLedger` first;
* a list call that meets a 5xx or a dropped connection is retried a bounded number of
  times with backoff; a submission never is (:class:`SubmissionUncertain` tells the
  caller to look the job up in the next list instead);
* a 429 is waited out once when ``Retry-After`` is short, otherwise the key is marked
  blocked and :class:`QuotaExhausted` ends the run;
* a 401 refreshes the token once and retries once; a 400 is never retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from tikpay_source.config import Credentials
from tikpay_source.errors import ApiError, AuthError, BudgetSpent, QuotaExhausted
from tikpay_source.quota import RequestLedger
from tikpay_source.settings import (
    GENERATE_REPORT_PATH,
    HTTP_TIMEOUT_SECONDS,
    MAX_TRANSIENT_RETRIES,
    REPORT_JOBS_LIST_PATH,
    RETRY_BACKOFF_SECONDS,
    TOKEN_REFRESH_MARGIN_SECONDS,
    TOKEN_SCOPE,
)

logger = logging.getLogger(__name__)

_TRANSIENT = (requests.ConnectionError, requests.Timeout)
_LONGEST_RETRY_AFTER = 366 * 24 * 3600  # an absurd Retry-After is read as "a year", not a crash


class SubmissionUncertain(ApiError):
    """A submission met a 5xx or a dropped connection: the job may or may not exist."""


@dataclass(frozen=True)
class ApiJob:
    """One entry of the job list, as the API reports it (times are naive local strings)."""

    job_id: str
    status: str
    report_type: str
    file_type: str
    start_time: str
    end_time: str
    timezone: str | None
    created_at: str | None
    expires_at: str | None
    completed_at: str | None
    download_url: str | None = field(default=None, repr=False)

    @classmethod
    def from_api(cls, raw: Any) -> ApiJob:
        """Read one job object. Only ``jobId`` is required: a job with odd other fields is still
        known to exist (so its window is not submitted again), and its status stops that window
        with a message naming the job."""
        if not isinstance(raw, dict) or not isinstance(raw.get("jobId"), str) or not raw["jobId"]:
            shown = {k: v for k, v in raw.items() if k != "downloadUrl"} if isinstance(raw, dict) else raw
            raise ApiError(f"the job list holds an entry without a jobId: {_short(shown)}")

        def text(name: str) -> str:
            value = raw.get(name)
            return value if isinstance(value, str) else ""

        return cls(
            job_id=raw["jobId"],
            status=text("status"),
            report_type=text("reportType"),
            file_type=(text("fileType") or "csv").lower(),
            start_time=text("startTime"),
            end_time=text("endTime"),
            timezone=text("timezone") or None,
            created_at=text("createdAt") or None,
            expires_at=text("expiresAt") or None,
            completed_at=text("completedAt") or None,
            download_url=text("downloadUrl") or None,
        )


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """``Retry-After`` as an aware UTC datetime, from delta-seconds or an HTTP-date (RFC 9110)."""
    if not value:
        return None
    text = value.strip()
    try:
        if text.isdigit():
            return now + timedelta(seconds=min(int(text), _LONGEST_RETRY_AFTER))
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def _error_detail(response: requests.Response) -> str:
    """The API's errorId and message, for an error line (never echoes request headers)."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        parts = [f"HTTP {response.status_code}"]
        if body.get("errorId"):
            parts.append(f"errorId {body['errorId']}")
        message = body.get("message") or body.get("error")
        if message:
            parts.append(str(message)[:200])
        return ", ".join(parts)
    return f"HTTP {response.status_code}"


class TikpayClient:
    """Talks to the Data API for one run; counts every request it sends."""

    def __init__(
        self,
        base_url: str,
        token_url: str,
        credentials: Credentials,
        ledger: RequestLedger,
        *,
        token_auth: str = "basic",
        max_retry_wait: float = 60.0,
        timeout: float = HTTP_TIMEOUT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_url = token_url
        self._credentials = credentials
        self.ledger = ledger
        self.token_auth = token_auth
        self.max_retry_wait = max_retry_wait
        self.timeout = timeout
        self._sleep = sleep
        self._session = requests.Session()
        self._token: str | None = None
        self._token_expires_at = 0.0
        self.requests_sent = 0
        self.max_requests: int | None = None  # a hard cap for this run, set by the runner

    def close(self) -> None:
        """Release the connection pool."""
        self._session.close()

    # --- auth -------------------------------------------------------------------------

    def _bearer_token(self) -> str:
        """A token valid for at least the refresh margin, fetched or refreshed as needed."""
        if self._token and time.monotonic() < self._token_expires_at - TOKEN_REFRESH_MARGIN_SECONDS:
            return self._token
        data = {"grant_type": "client_credentials", "scope": TOKEN_SCOPE}
        auth = None
        if self.token_auth == "basic":
            auth = (self._credentials.client_id, self._credentials.client_secret)
        else:
            data |= {
                "client_id": self._credentials.client_id,
                "client_secret": self._credentials.client_secret,
            }
        host = urlsplit(self.token_url).netloc
        response = self._send_with_retries(
            lambda: self._session.post(
                self.token_url, data=data, auth=auth, timeout=self.timeout, allow_redirects=False
            ),
            f"the token endpoint at {host}",
        )
        if response.status_code in (400, 401, 403):
            raise AuthError(
                f"the token endpoint at {host} refused client_id/client_secret ({_error_detail(response)}); "
                'check the credentials, or try token_auth = "form" if the server wants them in the body'
            )
        try:
            body = response.json()
            token, expires_in = str(body["access_token"]), float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise ApiError(
                f"the token endpoint at {host} answered without an access_token ({_error_detail(response)})"
            ) from None
        self._token, self._token_expires_at = token, time.monotonic() + expires_in
        return token

    # --- transport --------------------------------------------------------------------

    def _send_with_retries(self, send: Callable[[], requests.Response], what: str) -> requests.Response:
        """Send an idempotent, uncounted request (token), retrying transient faults with backoff."""
        for attempt in range(MAX_TRANSIENT_RETRIES + 1):
            try:
                response = send()
            except _TRANSIENT as exc:
                if attempt == MAX_TRANSIENT_RETRIES:
                    raise ApiError(
                        f"{what} did not answer ({type(exc).__name__}) after {attempt + 1} attempts"
                    ) from None
            else:
                if response.status_code < 500 or attempt == MAX_TRANSIENT_RETRIES:
                    return response
            self._sleep(RETRY_BACKOFF_SECONDS * 2**attempt)
        raise AssertionError("unreachable")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> requests.Response:
        """One API operation: counted, authenticated, retried only where that is safe."""
        is_submit = method == "POST"
        kind = "submit" if is_submit else "list"
        refreshed = waited = False
        transient_retries = 0
        while True:
            self._refuse_if_blocked()
            if self.max_requests is not None and self.requests_sent >= self.max_requests:
                raise BudgetSpent(f"the run's budget of {self.max_requests} request(s) is spent")
            headers = {
                "Authorization": f"Bearer {self._bearer_token()}",
                "x-api-key": self._credentials.api_key,
            }
            self.ledger.record_request(kind, detail=_short(body) if body else None)
            self.requests_sent += 1
            try:
                # no redirects: requests would carry x-api-key to any host, uncounted
                response = self._session.request(
                    method,
                    self.base_url + path,
                    json=body,
                    headers=headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except _TRANSIENT as exc:
                response, failure = None, f"the connection failed ({type(exc).__name__})"
            else:
                failure = (
                    f"the API answered {_error_detail(response)}" if response.status_code >= 500 else None
                )
            if failure:
                if is_submit:
                    raise SubmissionUncertain(f"{kind} call: {failure}")
                if transient_retries >= MAX_TRANSIENT_RETRIES:
                    raise ApiError(f"{kind} call: {failure} after {transient_retries + 1} attempts")
                self._sleep(RETRY_BACKOFF_SECONDS * 2**transient_retries)
                transient_retries += 1
                continue
            assert response is not None
            if response.status_code == 401 and not refreshed:
                refreshed, self._token = True, None
                continue
            if response.status_code in (401, 403):
                raise AuthError(
                    f"the API refused the credentials ({_error_detail(response)}); check api_key, client_id and client_secret"
                )
            if response.status_code == 429:
                if not waited and self._wait_out(response):
                    waited = True
                    continue
                raise self._quota_stop(response)
            if 300 <= response.status_code < 400:
                raise ApiError(
                    f"{kind} call was redirected (HTTP {response.status_code}); redirects are not followed"
                )
            if response.status_code >= 400:
                raise ApiError(f"{kind} call was refused: {_error_detail(response)}")
            return response

    def _retry_at(self, response: requests.Response) -> datetime | None:
        return parse_retry_after(response.headers.get("Retry-After"), datetime.now(timezone.utc))

    def _wait_out(self, response: requests.Response) -> bool:
        """Sleep through a short Retry-After; say False when it is too long to wait."""
        retry_at = self._retry_at(response)
        if retry_at is None:
            return False
        delay = (retry_at - datetime.now(timezone.utc)).total_seconds()
        if delay > self.max_retry_wait:
            return False
        logger.info("quota: told to wait %.0f s; waiting once", max(delay, 0))
        self._sleep(max(delay, 0))
        return True

    def _quota_stop(self, response: requests.Response) -> QuotaExhausted:
        retry_at = self._retry_at(response)
        if retry_at is not None:
            self.ledger.record_wait(retry_at.timestamp())
        when = retry_at.isoformat(timespec="seconds") if retry_at else "later (no Retry-After given)"
        return QuotaExhausted(
            f"the API key is over its quota; the API allows the next request at {when}", retry_at
        )

    def _refuse_if_blocked(self) -> None:
        """Never knock on a key that has been told to wait."""
        until = self.ledger.blocked_until()
        if until is not None:
            retry_at = datetime.fromtimestamp(until, timezone.utc)
            raise QuotaExhausted(
                f"the API key was told to wait; the next request is allowed at {retry_at.isoformat(timespec='seconds')}",
                retry_at,
            )

    # --- operations -------------------------------------------------------------------

    def submit(self, report_type: str, start: str, end: str, file_type: str) -> str:
        """Submit one generate-report job and return its id."""
        body = {"startTime": start, "endTime": end, "reportType": report_type, "fileType": file_type}
        response = self._call("POST", GENERATE_REPORT_PATH, body)
        try:
            job_id = response.json()["jobId"]
        except (ValueError, KeyError, TypeError):
            raise SubmissionUncertain(
                f"generate-report answered without a jobId: {_short(response.text)}"
            ) from None
        if not isinstance(job_id, str) or not job_id:
            raise SubmissionUncertain(f"generate-report answered an invalid jobId {job_id!r}")
        return job_id

    def list_jobs(self) -> list[ApiJob]:
        """Every job the API still holds (one request, whatever the number of jobs)."""
        response = self._call("GET", REPORT_JOBS_LIST_PATH)
        try:
            raw = response.json()
        except ValueError:
            raise ApiError(
                f"report-jobs-list answered something that is not JSON: {_short(response.text)}"
            ) from None
        if not isinstance(raw, list):
            raise ApiError(f"report-jobs-list answered {type(raw).__name__}, not a list of jobs")
        jobs = []
        for item in raw:
            try:
                jobs.append(ApiJob.from_api(item))
            except ApiError as exc:
                logger.warning("skipping a job-list entry: %s", exc)
        return jobs
