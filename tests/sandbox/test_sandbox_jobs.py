"""GET /report-jobs-list: fields, lifecycle, completion settings and retention."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import requests

from tikpay_source.sandbox import Fault

LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
START = datetime(2025, 6, 1, 2, 0, tzinfo=timezone.utc)  # 12:00 in Sydney (AEST, +10)


def test_complete_job_has_every_reference_field(make_sandbox, client_for):
    sb = make_sandbox(start_clock=START)
    client = client_for(sb)
    job_id = client.submit_ok(reportType="PAYMENTS", fileType="xml")
    first = client.job(job_id)
    assert first["status"] == "IN_PROGRESS"
    assert "downloadUrl" not in first
    assert "completedAt" not in first
    job = client.job(job_id)
    assert set(job) == {
        "jobId", "status", "timezone", "fileType", "downloadUrl", "reportType",
        "startTime", "endTime", "createdAt", "expiresAt", "completedAt",
    }  # fmt: skip
    assert job["status"] == "COMPLETE"
    assert job["timezone"] == "Australia/Sydney"
    assert (job["reportType"], job["fileType"]) == ("PAYMENTS", "xml")
    assert (job["startTime"], job["endTime"]) == ("2025-03-01T00:00:00", "2025-03-02T00:00:00")
    for name in ("createdAt", "expiresAt", "completedAt"):
        assert LOCAL.fullmatch(job[name]), job[name]
    assert job["createdAt"].startswith("2025-06-01T12:00:")  # local time of the sandbox clock
    created = datetime.fromisoformat(job["createdAt"])
    assert datetime.fromisoformat(job["expiresAt"]) - created == timedelta(days=7)
    assert job["downloadUrl"].startswith(sb.download_base_url + f"/reports/{job_id}.xml?")


def test_timezone_setting_is_reported_and_used(make_sandbox, client_for):
    sb = make_sandbox(timezone="Pacific/Auckland", start_clock=START, complete_after_list_calls=0)
    job = client_for(sb).job(client_for(sb).submit_ok())
    assert job["timezone"] == "Pacific/Auckland"
    assert job["createdAt"].startswith("2025-06-01T14:00:")  # NZST is UTC+12


@pytest.mark.parametrize("lists", [0, 1, 3])
def test_job_stays_in_progress_for_n_list_calls(make_sandbox, client_for, lists):
    client = client_for(make_sandbox(complete_after_list_calls=lists))
    job_id = client.submit_ok()
    statuses = [client.job(job_id)["status"] for _ in range(lists + 1)]
    assert statuses == ["IN_PROGRESS"] * lists + ["COMPLETE"]


def test_completion_also_waits_for_sandbox_seconds(make_sandbox, client_for):
    sb = make_sandbox(complete_after_list_calls=0, complete_after_seconds=30)
    client = client_for(sb)
    job_id = client.submit_ok()
    assert client.job(job_id)["status"] == "IN_PROGRESS"
    sb.clock.advance(29)
    assert client.job(job_id)["status"] == "IN_PROGRESS"
    sb.clock.advance(2)
    assert client.job(job_id)["status"] == "COMPLETE"


def test_window_without_rows_is_no_data(make_sandbox, client_for):
    client = client_for(make_sandbox(complete_after_list_calls=0))
    # 02:00-03:00 on 2025-10-05 does not exist in Sydney: clocks jump from 02:00 to 03:00.
    job = client.job(client.submit_ok(startTime="2025-10-05T02:00:00", endTime="2025-10-05T03:00:00"))
    assert job["status"] == "NO_DATA"
    assert "completedAt" in job
    assert "downloadUrl" not in job


def test_report_type_with_zero_rows_is_no_data(make_sandbox, client_for):
    client = client_for(make_sandbox(complete_after_list_calls=0, rows_per_hour={"CUSTOMERS": 0}))
    assert client.job(client.submit_ok(reportType="CUSTOMERS"))["status"] == "NO_DATA"
    assert client.job(client.submit_ok(reportType="TAPS"))["status"] == "COMPLETE"


def test_job_failed_fault_hits_only_the_matching_report_type(sandbox, client):
    sandbox.inject(Fault("job_failed", report_type="TRIPS"))
    taps, trips, trips_again = (client.submit_ok(reportType=t) for t in ("TAPS", "TRIPS", "TRIPS"))
    assert client.complete(taps)["status"] == "COMPLETE"
    failed = client.job(trips)
    assert failed["status"] == "FAILED"
    assert "downloadUrl" not in failed
    assert "completedAt" in failed
    assert client.job(trips_again)["status"] == "COMPLETE"


def test_no_data_fault(sandbox, client):
    sandbox.inject(Fault("no_data"))
    first, second = client.submit_ok(), client.submit_ok()
    assert client.complete(first)["status"] == "NO_DATA"
    assert client.job(second)["status"] == "COMPLETE"


def test_jobs_expire_after_seven_days(sandbox, client):
    job_id = client.submit_ok()
    job = client.complete(job_id)
    url = job["downloadUrl"]
    sandbox.clock.advance(7 * 86400 - 5)
    client.forget_token()  # tokens live an hour
    assert [j["jobId"] for j in client.list().json()] == [job_id]
    sandbox.clock.advance(10)
    assert client.list().json() == []
    assert [j["expired"] for j in sandbox.jobs()] == [True]
    assert requests.get(url, timeout=10).status_code in (403, 404)


def test_list_returns_jobs_in_submission_order(sandbox, client):
    ids = [client.submit_ok(reportType=t) for t in ("CUSTOMERS", "PAYMENTS", "TAPS", "TRIPS")]
    assert [j["jobId"] for j in client.list().json()] == ids
    assert [j["reportType"] for j in sandbox.jobs()] == ["CUSTOMERS", "PAYMENTS", "TAPS", "TRIPS"]


def test_expires_at_is_seven_days_of_instants_across_dst(make_sandbox, client_for):
    # Created just before Sydney's April fall-back: 7 * 24 h later the wall clock reads one hour less.
    sb = make_sandbox(start_clock=datetime(2025, 4, 4, 2, 0, tzinfo=timezone.utc))
    job = client_for(sb).job(client_for(sb).submit_ok())
    created = datetime.fromisoformat(job["createdAt"]).replace(tzinfo=ZoneInfo("Australia/Sydney"))
    expires = datetime.fromisoformat(job["expiresAt"]).replace(tzinfo=ZoneInfo("Australia/Sydney"))
    assert expires - created == timedelta(days=7, hours=-1)  # wall-clock difference
    assert expires.timestamp() - created.timestamp() == 7 * 86400


def test_at_its_defaults_a_job_is_done_after_a_time_however_often_the_list_is_read(client_for):
    """Like the real API (facts, assumption 10): list calls do not hurry a job along."""
    from tikpay_source.sandbox import Sandbox, SandboxSettings

    defaults = SandboxSettings()
    with Sandbox(defaults) as sb:
        client = client_for(sb)
        job_id = client.submit_ok()
        assert [client.job(job_id)["status"] for _ in range(5)] == ["IN_PROGRESS"] * 5
        sb.clock.advance(defaults.complete_after_seconds)
        assert client.job(job_id)["status"] == "COMPLETE"
