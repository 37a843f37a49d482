"""POST /generate-report: authentication, validation and the accepted answer."""

from __future__ import annotations

import uuid

import pytest
import requests
from ulid import ULID

from tikpay_source.sandbox import DEMO_API_KEY

VALID = {"startTime": "2025-03-01T00:00:00", "endTime": "2025-03-02T00:00:00", "reportType": "TRIPS"}


def _assert_error(response: requests.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    uuid.UUID(body["errorId"])
    assert words in body["message"], body["message"]


def test_accepted_job_has_a_ulid_and_is_in_progress(sandbox, client):
    response = client.submit(VALID)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "IN_PROGRESS"
    assert str(ULID.from_str(body["jobId"])) == body["jobId"]
    assert sandbox.submissions() == [{**VALID, "fileType": "csv"}]


def test_unknown_fields_are_ignored_and_file_type_kept(sandbox, client):
    assert client.submit(VALID, fileType="xml", colour="blue").status_code == 200
    assert sandbox.submissions("TRIPS") == [{**VALID, "fileType": "xml"}]
    assert sandbox.submissions("TAPS") == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"startTime": None}, "missing required field(s): startTime"),
        ({"endTime": None}, "missing required field(s): endTime"),
        ({"reportType": None}, "missing required field(s): reportType"),
        ({"reportType": "RIDES"}, "reportType must be one of"),
        ({"reportType": "taps"}, "reportType must be one of"),
        ({"fileType": "json"}, "fileType must be one of"),
        ({"startTime": "2025-03-01T00:00:00Z"}, "startTime must be a local date-time"),
        ({"startTime": "2025-03-01T00:00:00+11:00"}, "startTime must be a local date-time"),
        ({"endTime": "2025-03-02"}, "endTime must be a local date-time"),
        ({"endTime": "2025-03-02T00:00:00.000"}, "endTime must be a local date-time"),
        ({"endTime": "2025-02-30T00:00:00"}, "endTime must be a local date-time"),
        ({"endTime": 1740787200}, "endTime must be a local date-time"),
        ({"endTime": "2025-03-01T00:00:00"}, "startTime must be before endTime"),
        ({"endTime": "2025-02-28T00:00:00"}, "startTime must be before endTime"),
    ],
)
def test_invalid_bodies_are_400_with_error_id(sandbox, client, change, words):
    body = {**VALID, **change}
    body = {name: value for name, value in body.items() if value is not None}
    _assert_error(client.submit(body), 400, words)
    assert sandbox.submissions() == []


@pytest.mark.parametrize(
    ("raw", "words"),
    [(b"not json", "not valid JSON"), (b"[1, 2]", "must be a JSON object"), (b"", "not valid JSON")],
)
def test_unparseable_bodies_are_400(sandbox, client, raw, words):
    headers = {**client.headers(), "Content-Type": "application/json"}
    response = requests.post(f"{sandbox.base_url}/generate-report", data=raw, headers=headers, timeout=10)
    _assert_error(response, 400, words)


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ({"Authorization": None}, "invalid bearer token"),
        ({"Authorization": "Bearer not-a-token"}, "invalid bearer token"),
        ({"Authorization": "Basic abc"}, "invalid bearer token"),
        ({"x-api-key": None}, "missing x-api-key"),
        ({"x-api-key": "not-the-key"}, "invalid x-api-key"),
    ],
)
def test_missing_or_wrong_credentials_are_401(sandbox, client, override, words):
    headers = {**client.headers(), **override}
    headers = {name: value for name, value in headers.items() if value is not None}
    response = requests.post(f"{sandbox.base_url}/generate-report", json=VALID, headers=headers, timeout=10)
    _assert_error(response, 401, words)
    assert sandbox.submissions() == []
    assert sandbox.quota_used(DEMO_API_KEY) == 0


def test_unknown_path_is_404_json(sandbox, client):
    response = requests.get(f"{sandbox.base_url}/nope", headers=client.headers(), timeout=10)
    _assert_error(response, 404, "no such resource")


def test_requests_are_recorded(sandbox, client):
    client.submit(VALID)
    submit = [r for r in sandbox.api_requests if r["path"] == "/v1/generate-report"]
    assert [r["status"] for r in submit] == [200]
    assert submit[0]["method"] == "POST"
    assert submit[0]["headers"]["x-api-key"] == DEMO_API_KEY
    assert submit[0]["headers"]["authorization"].startswith("Bearer ")
