"""A tiny HTTP client for the sandbox tests: real requests over real sockets, no mocks.

It deliberately stays dumb (one method per endpoint, no retries) so that each test
states exactly which requests it makes and what it expects back.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tikpay_source.sandbox import DEMO_API_KEY, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox

DAY = ("2025-03-01T00:00:00", "2025-03-02T00:00:00")


class Client:
    """Talks to one sandbox with the demo credentials."""

    def __init__(self, sb: Sandbox, api_key: str = DEMO_API_KEY) -> None:
        self.sb = sb
        self.api_key = api_key
        self.http = requests.Session()
        self._token: str | None = None

    def token(self, **kwargs: Any) -> requests.Response:
        """A token request; by default client credentials go as HTTP Basic."""
        kwargs.setdefault("auth", (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))
        kwargs.setdefault("data", {"grant_type": "client_credentials"})
        kwargs.setdefault("timeout", 10)
        return self.http.post(self.sb.token_url, **kwargs)

    def headers(self) -> dict[str, str]:
        """Bearer token (fetched once) and API key."""
        if self._token is None:
            response = self.token()
            assert response.status_code == 200, response.text
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}", "x-api-key": self.api_key}

    def forget_token(self) -> None:
        """Fetch a new token on the next call (after the sandbox clock expired the old one)."""
        self._token = None

    def submit(self, body: dict[str, Any] | None = None, **fields: Any) -> requests.Response:
        """POST /generate-report; ``fields`` override a default one-day TAPS csv body."""
        payload = body if body is not None else {"startTime": DAY[0], "endTime": DAY[1], "reportType": "TAPS"}
        payload = {**payload, **fields}
        return self.http.post(
            f"{self.sb.base_url}/generate-report", json=payload, headers=self.headers(), timeout=10
        )

    def submit_ok(self, **fields: Any) -> str:
        """Submit and return the job id, failing the test on anything but 200."""
        response = self.submit(**fields)
        assert response.status_code == 200, response.text
        return response.json()["jobId"]

    def list(self, timeout: float = 10) -> requests.Response:
        """GET /report-jobs-list."""
        return self.http.get(f"{self.sb.base_url}/report-jobs-list", headers=self.headers(), timeout=timeout)

    def job(self, job_id: str) -> dict[str, Any]:
        """One job from a fresh list call."""
        response = self.list()
        assert response.status_code == 200, response.text
        return next(job for job in response.json() if job["jobId"] == job_id)

    def complete(self, job_id: str, max_lists: int = 5) -> dict[str, Any]:
        """List until the job leaves IN_PROGRESS; fail after ``max_lists`` list calls."""
        for _ in range(max_lists):
            job = self.job(job_id)
            if job["status"] != "IN_PROGRESS":
                return job
        raise AssertionError(f"job {job_id} still IN_PROGRESS after {max_lists} lists")


@pytest.fixture
def client(sandbox: Sandbox) -> Client:
    """A client of the default sandbox."""
    return Client(sandbox)


@pytest.fixture
def client_for() -> type[Client]:
    """The client class, for sandboxes built with ``make_sandbox``: ``client_for(sb)``."""
    return Client
