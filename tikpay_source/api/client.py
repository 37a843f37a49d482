"""The Data API transport: OAuth2 token, x-api-key, and a retry policy that respects the quota.

dlt's stock ``requests`` helper retries POSTs on 429 and 5xx, which would repeat a
submission behind the budget's back. This client uses a plain ``requests`` session and
its own rules instead:

* every request carrying the API key is counted by the run's :class:`RequestBudget`
  (and so written to the request ledger) before it is sent;
* a list call that meets a 5xx or a dropped connection is retried a bounded number of
  times with backoff; a submission never is (:class:`SubmissionUncertain` tells the
  caller to look the job up in the next list instead), except a 501 or 505, which says
  the call itself is not supported and is an :class:`ApiError` like a 400;
* a 429 is waited out once when ``Retry-After`` is short, otherwise the key is marked
  blocked and :class:`QuotaExhausted` ends the run;
* a 401 refreshes the token once and retries once; a 400 is never retried.

It knows nothing of windows or state; the answers are read into :mod:`tikpay_source.api.models` values.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
import urllib3

from tikpay_source.api.models import ApiJob, ErrorAnswer, parse_retry_after, shorten
from tikpay_source.config import Credentials
from tikpay_source.errors import ApiError, AuthError, QuotaExhausted, RequestNotSent, SubmissionUncertain
from tikpay_source.planning.budget import RequestBudget
from tikpay_source.settings import (
    GENERATE_REPORT_PATH,
    HTTP_TIMEOUT_SECONDS,
    LOGGER_NAME,
    MAX_TRANSIENT_RETRIES,
    REPORT_JOBS_LIST_PATH,
    RETRY_BACKOFF_SECONDS,
    TOKEN_REFRESH_MARGIN_SECONDS,
    TOKEN_SCOPE,
)

log = logging.getLogger(LOGGER_NAME)

# faults of the connection, not answers: a dropped or timed-out connection, and an answer cut off
# mid-body (requests raises ChunkedEncodingError for an early close, whatever the framing)
_TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
# 5xx answers that say the request itself is not supported: retrying it, or waiting for a
# job it cannot have created, is pointless
_NOT_TRANSIENT_5XX = frozenset({501, 505})


def never_sent(exc: BaseException) -> bool:
    """Whether a failed request provably never reached the API: no connection was ever made.

    A refused or unresolvable connection, or a connect timeout, leaves nothing sent; a
    read timeout or a reset after connecting may have delivered the request, so it counts.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    # urllib3's NewConnectionError (refused, no such host) is a kind of ConnectTimeoutError
    return isinstance(reason, urllib3.exceptions.ConnectTimeoutError)


class JobsApi(Protocol):
    """What the runner asks of the Data API (:class:`TikpayClient` is it; a test may pass a fake)."""

    def submit(self, report_type: str, start: str, end: str, file_type: str) -> str: ...

    def list_jobs(self) -> list[ApiJob]: ...


class TikpayClient:
    """Talks to the Data API for one run; counts every request it sends."""

    def __init__(
        self,
        base_url: str,
        token_url: str,
        credentials: Credentials,
        budget: RequestBudget,
        *,
        token_auth: str = "basic",
        max_retry_wait: float = 60.0,
        timeout: float = HTTP_TIMEOUT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_url = token_url
        self._credentials = credentials
        self.budget = budget
        self.token_auth = token_auth
        self.max_retry_wait = max_retry_wait
        self.timeout = timeout
        self._sleep = sleep
        self._session = requests.Session()
        self._token: str | None = None
        self._token_expires_at = 0.0

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
                f"the token endpoint at {host} refused client_id/client_secret ({ErrorAnswer.of(response)}); "
                'check the credentials, or try token_auth = "form" if the server wants them in the body'
            )
        try:
            body = response.json()
            token, expires_in = str(body["access_token"]), float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise ApiError(
                f"the token endpoint at {host} answered without an access_token ({ErrorAnswer.of(response)})"
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
        kind = "submit" if method == "POST" else "list"
        refreshed = waited = False
        transient_retries = 0
        while True:
            self._refuse_if_blocked()
            headers = {
                "Authorization": f"Bearer {self._bearer_token()}",
                "x-api-key": self._credentials.api_key,
            }
            request_id = self.budget.spend(kind, detail=shorten(body) if body else None)
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
                response, answer = None, None
                failure = f"the connection failed ({type(exc).__name__})"
                if never_sent(exc):  # no connection was made: the API cannot have seen it
                    self.budget.refund(request_id)
                    if kind == "submit" or transient_retries >= MAX_TRANSIENT_RETRIES:
                        raise RequestNotSent(f"{kind} call: {failure}; nothing was sent") from None
            else:
                answer = ErrorAnswer.of(response) if response.status_code >= 400 else None
                transient = response.status_code >= 500 and response.status_code not in _NOT_TRANSIENT_5XX
                failure = f"the API answered {answer}" if transient else None
            if failure:
                status, error_id = (answer.status, answer.error_id) if answer else (None, None)
                if kind == "submit":
                    raise SubmissionUncertain(f"{kind} call: {failure}", status=status, error_id=error_id)
                if transient_retries >= MAX_TRANSIENT_RETRIES:
                    message = f"{kind} call: {failure} after {transient_retries + 1} attempts"
                    raise ApiError(message, status=status, error_id=error_id)
                self._sleep(RETRY_BACKOFF_SECONDS * 2**transient_retries)
                transient_retries += 1
                continue
            assert response is not None
            if response.status_code == 401 and not refreshed:
                refreshed, self._token = True, None
                continue
            if response.status_code in (401, 403):
                raise AuthError(
                    f"the API refused the credentials ({answer}); check api_key, client_id and client_secret"
                )
            if response.status_code == 429:
                if not waited and self._wait_out(response):
                    waited = True
                    continue
                raise self._quota_stop(response)
            if 300 <= response.status_code < 400:
                raise ApiError(
                    f"{kind} call was redirected (HTTP {response.status_code}); redirects are not followed",
                    status=response.status_code,
                )
            if answer is not None:
                raise answer.error(f"{kind} call was refused: {answer}")
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
        log.info("quota: told to wait %.0f s; waiting once", max(delay, 0))
        self._sleep(max(delay, 0))
        return True

    def _quota_stop(self, response: requests.Response) -> QuotaExhausted:
        retry_at = self._retry_at(response)
        if retry_at is not None:
            self.budget.record_wait(retry_at.timestamp())
        when = retry_at.isoformat(timespec="seconds") if retry_at else "later (no Retry-After given)"
        return QuotaExhausted(
            f"the API key is over its quota; the API allows the next request at {when}", retry_at
        )

    def _refuse_if_blocked(self) -> None:
        """Never knock on a key that has been told to wait."""
        until = self.budget.blocked_until()
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
                f"generate-report answered without a jobId: {shorten(response.text)}"
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
                f"report-jobs-list answered something that is not JSON: {shorten(response.text)}"
            ) from None
        if not isinstance(raw, list):
            raise ApiError(f"report-jobs-list answered {type(raw).__name__}, not a list of jobs")
        jobs = []
        for item in raw:
            try:
                jobs.append(ApiJob.from_api(item))
            except ApiError as exc:
                log.warning("skipping a job-list entry: %s", exc)
        return jobs
