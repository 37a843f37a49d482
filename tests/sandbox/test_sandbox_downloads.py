"""The object-storage stand-in: pre-signed expiring links on a second host, no credentials."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit, urlunsplit

import pytest
import requests


@pytest.fixture
def job(client):
    """A COMPLETE one-day TAPS csv job, as the list shows it."""
    return client.complete(client.submit_ok())


def test_download_is_on_another_host_and_needs_no_credentials(sandbox, job):
    download, api = urlsplit(job["downloadUrl"]), urlsplit(sandbox.base_url)
    assert download.netloc != api.netloc
    assert download.path == f"/reports/{job['jobId']}.csv"
    assert set(parse_qs(download.query)) == {"expires", "signature"}
    response = requests.get(job["downloadUrl"], timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert response.content == sandbox.report_file(job["jobId"]).read_bytes()


def test_download_requests_are_recorded_with_their_headers(sandbox, job):
    requests.get(job["downloadUrl"], headers={"X-Probe": "1"}, timeout=10)
    (entry,) = sandbox.download_requests
    assert entry["status"] == 200
    assert entry["path"].startswith(f"/reports/{job['jobId']}.csv?")
    assert entry["headers"]["x-probe"] == "1"
    assert "authorization" not in entry["headers"]
    assert "x-api-key" not in entry["headers"]


def test_xml_download_content_type(sandbox, client):
    job = client.complete(client.submit_ok(fileType="xml"))
    response = requests.get(job["downloadUrl"], timeout=10)
    assert response.headers["Content-Type"] == "application/xml"
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<report type="TAPS">')


def test_each_list_call_signs_a_fresh_link(sandbox, client, job):
    sandbox.clock.advance(5)
    again = client.job(job["jobId"])
    assert again["downloadUrl"] != job["downloadUrl"]
    assert requests.get(again["downloadUrl"], timeout=10).status_code == 200


def test_links_expire_after_the_link_ttl(sandbox, client, job):
    sandbox.clock.advance(3599)
    assert requests.get(job["downloadUrl"], timeout=10).status_code == 200
    sandbox.clock.advance(2)
    response = requests.get(job["downloadUrl"], timeout=10)
    assert response.status_code == 403
    assert b"<Code>AccessDenied</Code>" in response.content
    assert b"Request has expired" in response.content
    client.forget_token()
    assert requests.get(client.job(job["jobId"])["downloadUrl"], timeout=10).status_code == 200


@pytest.mark.parametrize(
    "tamper",
    [
        lambda q: {**q, "signature": ["0" * 64]},
        lambda q: {**q, "expires": [str(int(q["expires"][0]) + 3600)]},
        lambda q: {"expires": q["expires"]},
    ],
    ids=["bad-signature", "extended-expiry", "no-signature"],
)
def test_tampered_links_are_refused(job, tamper):
    parts = urlsplit(job["downloadUrl"])
    query = tamper(parse_qs(parts.query))
    url = urlunsplit(parts._replace(query="&".join(f"{k}={v[0]}" for k, v in query.items())))
    response = requests.get(url, timeout=10)
    assert response.status_code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in response.content


def test_link_for_another_job_path_is_refused(job):
    url = job["downloadUrl"].replace(job["jobId"], "01" + "A" * 24)
    assert requests.get(url, timeout=10).status_code == 403


def test_head_reports_the_length_without_a_body(job):
    head = requests.head(job["downloadUrl"], timeout=10)
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == len(requests.get(job["downloadUrl"], timeout=10).content)
    assert head.content == b""


def test_download_does_not_count_in_quota(sandbox, job):
    used = sandbox.quota_used()
    requests.get(job["downloadUrl"], timeout=10)
    assert sandbox.quota_used() == used


def test_download_host_falls_back_to_the_api_host_when_unbindable(make_sandbox, client_for):
    sb = make_sandbox(download_host="192.0.2.1")  # TEST-NET-1: never a local address
    api, download = urlsplit(sb.base_url), urlsplit(sb.download_base_url)
    assert download.hostname == api.hostname == "127.0.0.1"
    assert download.port != api.port
    client = client_for(sb)
    job = client.complete(client.submit_ok())
    assert requests.get(job["downloadUrl"], timeout=10).status_code == 200
