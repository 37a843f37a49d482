"""The rolling per-API-key quota: what counts, the 429 answer and Retry-After in both formats."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import pytest
import requests

from tikpay_source.sandbox import DEMO_API_KEY, Fault

START = datetime(2025, 6, 1, 0, 0, tzinfo=timezone.utc)


def _spend(client, n: int) -> None:
    for i in range(n):
        response = client.list() if i % 2 else client.submit()
        assert response.status_code == 200, response.text


def test_twenty_requests_then_429_with_retry_after_seconds(make_sandbox, client_for):
    sb = make_sandbox(start_clock=START)
    client = client_for(sb)
    _spend(client, 1)
    sb.clock.advance(1000)
    _spend(client, 19)
    assert sb.quota_used(DEMO_API_KEY) == 20
    response = client.list()
    assert response.status_code == 429
    uuid.UUID(response.json()["errorId"])
    # the oldest counted request leaves the 24 h window 86400 - 1000 s from now
    assert int(response.headers["Retry-After"]) == 86400 - 1000
    assert client.submit().status_code == 429
    assert sb.quota_used(DEMO_API_KEY) == 20  # 429s are not counted
    assert sb.quota_refused(DEMO_API_KEY) == 2  # but they are told apart from a fault's 429
    assert len(sb.submissions()) == 11  # 1 + 10 of the 19


def test_retry_after_as_http_date(make_sandbox, client_for):
    sb = make_sandbox(start_clock=START, retry_after_format="http-date", quota_limit=2)
    client = client_for(sb)
    _spend(client, 2)
    response = client.list()
    assert response.status_code == 429
    retry_at = parsedate_to_datetime(response.headers["Retry-After"])
    assert response.headers["Retry-After"].endswith(" GMT")
    assert abs((retry_at - sb.clock.now()).total_seconds() - 86400) <= 2
    # Date is on the sandbox clock too, so Retry-After minus Date is the wait
    sent = parsedate_to_datetime(response.headers["Date"])
    assert abs((retry_at - sent).total_seconds() - 86400) <= 2


def test_window_rolls_with_the_sandbox_clock(make_sandbox, client_for):
    sb = make_sandbox(quota_limit=3, quota_window_seconds=600)
    client = client_for(sb)
    _spend(client, 3)
    assert client.list().status_code == 429
    sb.clock.advance(601)
    assert sb.quota_used() == 0
    assert client.list().status_code == 200


def test_401_token_and_download_requests_are_not_counted(sandbox, client):
    job = client.complete(client.submit_ok(), max_lists=2)  # 3 counted calls
    for _ in range(3):
        assert requests.get(job["downloadUrl"], timeout=10).status_code == 200
        assert client.token().status_code == 200
        bad = requests.get(
            f"{sandbox.base_url}/report-jobs-list", headers={"x-api-key": DEMO_API_KEY}, timeout=10
        )
        assert bad.status_code == 401
    assert sandbox.quota_used(DEMO_API_KEY) == 3


def test_400_and_faulted_500_answers_are_counted(sandbox, client):
    assert client.submit(reportType="NOPE").status_code == 400
    sandbox.inject(Fault("status", endpoint="list", status=500))
    assert client.list().status_code == 500
    assert sandbox.quota_used(DEMO_API_KEY) == 2


def test_quota_is_per_api_key(make_sandbox, client_for):
    sb = make_sandbox(api_keys=("key-a", "key-b"), quota_limit=2)
    a, b = client_for(sb, api_key="key-a"), client_for(sb, api_key="key-b")
    _spend(a, 2)
    assert a.list().status_code == 429
    assert b.list().status_code == 200
    assert (sb.quota_used("key-a"), sb.quota_used("key-b")) == (2, 1)


@pytest.mark.parametrize("style", ["seconds", "http-date"])
def test_quota_exhausted_fault(make_sandbox, client_for, style):
    sb = make_sandbox(retry_after_format=style)
    client = client_for(sb)
    sb.inject(Fault("quota_exhausted", retry_after=120, times=2))
    first, second = client.submit(), client.list()
    assert (first.status_code, second.status_code) == (429, 429)
    if style == "seconds":
        assert first.headers["Retry-After"] == "120"
    else:
        wait = parsedate_to_datetime(first.headers["Retry-After"]) - sb.clock.now()
        assert 118 <= wait.total_seconds() <= 121
    assert client.list().status_code == 200
    assert (sb.quota_used(), sb.quota_refused()) == (1, 0)  # a fault's 429s are not the quota's
