"""Every fault kind, over real HTTP."""

from __future__ import annotations

import csv
import io
import uuid
import xml.etree.ElementTree as StdET

import pytest
import requests

from tikpay_source.sandbox import Fault


@pytest.fixture
def job(client):
    """A COMPLETE one-day TAPS csv job."""
    return client.complete(client.submit_ok())


@pytest.mark.parametrize("endpoint", ["submit", "list"])
@pytest.mark.parametrize("status", [500, 503])
def test_status_fault_on_api_endpoints(sandbox, client, endpoint, status):
    sandbox.inject(Fault("status", endpoint=endpoint, status=status))
    call = client.submit if endpoint == "submit" else client.list
    failed = call()
    assert failed.status_code == status
    uuid.UUID(failed.json()["errorId"])
    assert call().status_code == 200  # times=1: spent after one hit


def test_503_can_carry_retry_after(sandbox, client):
    sandbox.inject(Fault("status", endpoint="list", status=503, retry_after=30))
    assert client.list().headers["Retry-After"] == "30"


def test_fault_until_cleared(sandbox, client):
    sandbox.inject(Fault("status", endpoint="list", times=None))
    assert [client.list().status_code for _ in range(3)] == [500, 500, 500]
    sandbox.clear_faults()
    assert client.list().status_code == 200


def test_status_fault_on_download(sandbox, job):
    sandbox.inject(Fault("status", endpoint="download", status=503))
    assert requests.get(job["downloadUrl"], timeout=10).status_code == 503
    assert requests.get(job["downloadUrl"], timeout=10).status_code == 200


@pytest.mark.parametrize("endpoint", ["token", "list"])
def test_slow_fault_delays_one_answer(sandbox, client, endpoint):
    """The slowed answer outlasts a short timeout; the next is not slowed (it would outlast 10 s too)."""
    client.headers()
    sandbox.inject(Fault("slow", endpoint=endpoint, delay=30.0))  # far beyond any load's delay
    call = client.token if endpoint == "token" else client.list
    with pytest.raises(requests.exceptions.ReadTimeout):
        call(timeout=0.5)
    assert call().status_code == 200


def test_slow_download_times_out_a_patient_client(sandbox, job):
    sandbox.inject(Fault("slow", endpoint="download", delay=1.0))
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(job["downloadUrl"], timeout=0.3)


def test_drop_closes_the_connection_short_of_content_length(sandbox, job):
    size = len(sandbox.report_file(job["jobId"]).read_bytes())
    sandbox.inject(Fault("drop", after_bytes=1000))
    with requests.get(job["downloadUrl"], stream=True, timeout=10) as response:
        assert response.status_code == 200
        assert int(response.headers["Content-Length"]) == size
        received = bytearray()
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            for chunk in response.iter_content(100):
                received += chunk
    assert len(received) == 1000
    assert (
        requests.get(job["downloadUrl"], timeout=10).content == sandbox.report_file(job["jobId"]).read_bytes()
    )


@pytest.mark.parametrize("file_type", ["csv", "xml"])
def test_truncate_serves_a_consistent_but_cut_file(sandbox, client, file_type):
    job = client.complete(client.submit_ok(fileType=file_type))
    full = sandbox.report_file(job["jobId"]).read_bytes()
    sandbox.inject(Fault("truncate"))
    response = requests.get(job["downloadUrl"], timeout=10)
    cut = response.content
    assert int(response.headers["Content-Length"]) == len(cut)
    assert full.startswith(cut)
    assert 0.5 * len(full) < len(cut) < 0.7 * len(full)
    assert not cut.endswith(b"\n")  # cut inside a row
    cut.decode("utf-8")  # the damage is structural, not an encoding error
    if file_type == "xml":
        with pytest.raises(StdET.ParseError):
            StdET.fromstring(cut)
    else:
        last = list(csv.reader(io.StringIO(cut.decode(), newline="")))[-1]
        full_rows = list(csv.reader(io.StringIO(full.decode(), newline="")))
        assert last not in full_rows


def test_malformed_csv_row_has_one_field_too_many(sandbox, client):
    job = client.complete(client.submit_ok())
    sandbox.inject(Fault("malformed_row"))
    rows = list(csv.reader(io.StringIO(requests.get(job["downloadUrl"], timeout=10).text, newline="")))
    widths = [len(row) for row in rows]
    bad = [i for i, w in enumerate(widths) if w != widths[0]]
    assert len(bad) == 1
    assert widths[bad[0]] == widths[0] + 1
    assert 0.3 * len(rows) < bad[0] < 0.7 * len(rows)


@pytest.mark.parametrize("report_type", ["TAPS", "TRIPS"])
def test_malformed_xml_row_breaks_the_markup(sandbox, client, report_type):
    job = client.complete(client.submit_ok(fileType="xml", reportType=report_type))
    sandbox.inject(Fault("malformed_row"))
    with pytest.raises(StdET.ParseError):
        StdET.fromstring(requests.get(job["downloadUrl"], timeout=10).content)
    StdET.fromstring(requests.get(job["downloadUrl"], timeout=10).content)  # spent: good again


def test_expire_token_invalidates_every_issued_token(sandbox, client):
    client.headers()
    assert client.list().status_code == 200
    sandbox.inject(Fault("expire_token"))
    response = client.list()
    assert response.status_code == 401
    assert response.json()["message"] == "token expired"
    client.forget_token()
    assert client.list().status_code == 200


def test_expire_links_expires_links_issued_so_far(sandbox, client, job):
    sandbox.inject(Fault("expire_links"))
    response = requests.get(job["downloadUrl"], timeout=10)
    assert response.status_code == 403
    assert b"Request has expired" in response.content
    fresh = client.job(job["jobId"])["downloadUrl"]
    assert requests.get(fresh, timeout=10).status_code == 200


def test_invalid_faults_are_rejected_at_construction():
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")
    with pytest.raises(ValueError, match="cannot target"):
        Fault("drop", endpoint="list")
    with pytest.raises(ValueError, match="times"):
        Fault("status", times=0)
