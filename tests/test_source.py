"""The tikpay source end to end: real sandbox over loopback, real DuckDB file, exact row counts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from harness import Harness, assert_exact, daily
from warehouses import KINDS

from tikpay_source import tikpay
from tikpay_source.api.client import TikpayClient
from tikpay_source.api.ledger import RequestLedger
from tikpay_source.config import Credentials
from tikpay_source.planning.budget import RequestBudget
from tikpay_source.sandbox import DEMO_API_KEY, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Fault, Sandbox
from tikpay_source.settings import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_WINDOWS_FAILED, REPORT_TABLES

MakeSandbox = Callable[..., Sandbox]


@pytest.fixture
def harness(sandbox: Sandbox, tmp_path: Path) -> Harness:
    return Harness(sandbox, tmp_path)


@pytest.mark.warehouses(*KINDS)  # on S3 too
def test_multi_day_backfill_loads_every_report_row_exactly_once(harness: Harness) -> None:
    windows = daily("2025-03-01", 3)
    summary = harness.run(start_time="2025-03-01", end_time="2025-03-04")

    for report_type in REPORT_TABLES:
        assert_exact(harness, report_type, windows)
        assert sorted(harness.submissions_for(report_type)) == windows
    assert summary.exit_code == EXIT_OK
    assert summary.windows_loaded == 12 and summary.submitted == 12 and not summary.pending
    jobs = harness.query(
        "SELECT job_id, load_status, rows_loaded, report_type, window_start FROM report_jobs"
    )
    assert len(jobs) == 12 and {j[1] for j in jobs} == {"loaded"}
    # each report row names the job it came from, and that job's row counts it
    for table in REPORT_TABLES.values():
        tagged = dict(harness.query(f"SELECT _tikpay_job_id, count(*) FROM {table} GROUP BY 1"))
        assert tagged == {
            job_id: rows for job_id, _, rows, rt, _ in jobs if REPORT_TABLES[rt] == table and rows
        }


@pytest.mark.parametrize(
    "days, label",
    [
        (("2025-04-05", 3), "clocks go back on 2025-04-06"),
        (("2025-10-04", 3), "clocks go forward on 2025-10-05"),
    ],
)
@pytest.mark.parametrize("window", ["P1D", "PT6H"])
def test_backfill_across_a_daylight_saving_change_loses_and_doubles_nothing(
    harness: Harness, days: tuple[str, int], label: str, window: str
) -> None:
    windows = daily(*days)
    harness.run(report_types=["TAPS"], start_time=windows[0][0], end_time=windows[-1][1], window=window)

    loaded = harness.query("SELECT count(*), count(DISTINCT tap_id) FROM taps")[0]
    truth = sum(harness.sandbox.count_rows("TAPS", start, end) for start, end in windows)
    assert loaded == (truth, truth), label
    # the change day is one local day of 23 or 25 real hours, and holds exactly its rows
    change_day = windows[1]
    by_day = harness.query(
        f"SELECT count(*) FROM taps WHERE _tikpay_window_start >= '{change_day[0]}' AND _tikpay_window_end <= '{change_day[1]}'"
    )[0][0]
    assert by_day == harness.sandbox.count_rows("TAPS", *change_day) > 0


def test_a_second_run_with_nothing_new_submits_nothing(harness: Harness) -> None:
    harness.run(report_types=["TRIPS", "PAYMENTS"], start_time="2025-03-01", end_time="2025-03-03")
    requests_before = len(harness.sandbox.api_requests)
    summary = harness.run(report_types=["TRIPS", "PAYMENTS"], start_time="2025-03-01", end_time="2025-03-03")

    assert len(harness.sandbox.api_requests) == requests_before
    assert summary.requests == 0 and summary.submitted == 0 and summary.windows_loaded == 0
    assert_exact(harness, "TRIPS", daily("2025-03-01", 2))


def test_the_next_run_continues_from_the_last_loaded_window(harness: Harness) -> None:
    harness.run(report_types=["TRIPS"], start_time="2025-03-01", end_time="2025-03-03")
    harness.run(report_types=["TRIPS"], start_time="2025-03-01", end_time="2025-03-05")

    assert harness.submissions_for("TRIPS") == daily("2025-03-01", 4)
    assert_exact(harness, "TRIPS", daily("2025-03-01", 4))


def test_xml_reports_load_the_same_rows_as_csv(sandbox: Sandbox, tmp_path: Path) -> None:
    csv_run, xml_run = Harness(sandbox, tmp_path / "csv"), Harness(sandbox, tmp_path / "xml")
    csv_run.run(report_types=["TRIPS", "CUSTOMERS"], start_time="2025-03-01", end_time="2025-03-02")
    xml_run.run(
        report_types=["TRIPS", "CUSTOMERS"], start_time="2025-03-01", end_time="2025-03-02", file_type="xml"
    )

    assert {s["fileType"] for s in sandbox.submissions()} == {"csv", "xml"}
    for table in ("trips", "customers"):
        columns = "* EXCLUDE (_tikpay_job_id)"
        from_csv = csv_run.query(f"SELECT {columns} FROM {table} ORDER BY ALL")
        assert from_csv and from_csv == xml_run.query(f"SELECT {columns} FROM {table} ORDER BY ALL")


def test_jobs_still_running_at_max_wait_are_loaded_by_the_next_run(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    h = Harness(make_sandbox(complete_after_list_calls=3), tmp_path)
    first = h.run(report_types=["TAPS"], start_time="2025-03-01", end_time="2025-03-03", max_wait=0)
    assert first.submitted == 2 and len(first.pending) == 2 and first.windows_loaded == 0
    assert "will be loaded by the next run" in first.lines()[-1]
    assert not h.table_exists("taps")

    h.run(report_types=["TAPS"], start_time="2025-03-01", end_time="2025-03-03", max_wait=0)
    second = h.run(report_types=["TAPS"], start_time="2025-03-01", end_time="2025-03-03")
    assert len(h.sandbox.submissions()) == 2  # waiting never submits again
    assert second.windows_loaded == 2 and not second.pending
    assert_exact(h, "TAPS", daily("2025-03-01", 2))


def test_no_data_completes_its_window_with_zero_rows(harness: Harness) -> None:
    harness.sandbox.inject(Fault("no_data", report_type="PAYMENTS", times=1))
    summary = harness.run(report_types=["PAYMENTS"], start_time="2025-03-01", end_time="2025-03-03")

    assert summary.windows_loaded == 2 and not summary.pending
    statuses = harness.query(
        "SELECT window_start, status, load_status, rows_loaded FROM report_jobs ORDER BY 1"
    )
    assert [s[1:] for s in statuses] == [("NO_DATA", "no_data", 0), ("COMPLETE", "loaded", statuses[1][3])]
    assert list(harness.rows_per_window("payments")) == ["2025-03-02T00:00:00"]
    again = harness.run(report_types=["PAYMENTS"], start_time="2025-03-01", end_time="2025-03-03")
    assert again.submitted == 0  # the NO_DATA window counts as loaded


def test_a_failed_job_is_submitted_again_and_its_window_loaded(harness: Harness) -> None:
    harness.sandbox.inject(Fault("job_failed", report_type="TRIPS", times=1))
    summary = harness.run(report_types=["TRIPS"], start_time="2025-03-01", end_time="2025-03-02")

    assert harness.submissions_for("TRIPS") == daily("2025-03-01", 1) * 2
    assert summary.exit_code == EXIT_OK
    assert sorted(r[0] for r in harness.query("SELECT load_status FROM report_jobs")) == ["failed", "loaded"]
    assert_exact(harness, "TRIPS", daily("2025-03-01", 1))


def test_a_window_that_keeps_failing_is_given_up_reported_and_retried_on_request(harness: Harness) -> None:
    harness.sandbox.inject(Fault("job_failed", report_type="TAPS", times=None))
    summary = harness.run(report_types=["TAPS", "TRIPS"], start_time="2025-03-01", end_time="2025-03-02")

    assert len(harness.submissions_for("TAPS")) == 3  # MAX_SUBMIT_ATTEMPTS, then no more
    assert summary.exit_code == EXIT_WINDOWS_FAILED
    (gave_up,) = summary.gave_up
    assert gave_up.startswith("TAPS 2025-03-01T00:00:00 to 2025-03-02T00:00:00: job ") and "FAILED" in gave_up
    assert any("--retry-failed" in line for line in summary.lines())
    assert_exact(harness, "TRIPS", daily("2025-03-01", 1))  # the other report type still loaded

    quiet = harness.run(report_types=["TAPS", "TRIPS"], start_time="2025-03-01", end_time="2025-03-02")
    assert len(harness.submissions_for("TAPS")) == 3 and quiet.exit_code == EXIT_WINDOWS_FAILED

    harness.sandbox.clear_faults()
    fixed = harness.run(
        report_types=["TAPS", "TRIPS"], start_time="2025-03-01", end_time="2025-03-02", retry_failed=True
    )
    assert fixed.exit_code == EXIT_OK and not fixed.gave_up
    assert_exact(harness, "TAPS", daily("2025-03-01", 1))


def test_a_job_that_expired_before_download_is_submitted_again(harness: Harness) -> None:
    harness.run(report_types=["CUSTOMERS"], start_time="2025-03-01", end_time="2025-03-02", max_wait=0)
    harness.sandbox.clock.advance(8 * 24 * 3600)  # past the 7-day job lifetime
    summary = harness.run(report_types=["CUSTOMERS"], start_time="2025-03-01", end_time="2025-03-02")

    assert harness.submissions_for("CUSTOMERS") == daily("2025-03-01", 1) * 2
    assert summary.windows_loaded == 1
    assert_exact(harness, "CUSTOMERS", daily("2025-03-01", 1))


@pytest.mark.warehouses(*KINDS)  # on S3 too
def test_a_job_submitted_before_a_crash_is_adopted_not_submitted_again(harness: Harness) -> None:
    """A crashed run submitted a job but never saved its id; the next run finds it in the job list."""
    client = TikpayClient(
        harness.sandbox.base_url,
        harness.sandbox.token_url,
        Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_API_KEY),
        RequestBudget(RequestLedger.local(harness.tmp / "ledger", DEMO_API_KEY)),
    )
    orphan = client.submit("TRIPS", "2025-03-01T00:00:00", "2025-03-02T00:00:00", "csv")
    client.close()

    summary = harness.run(report_types=["TRIPS"], start_time="2025-03-01", end_time="2025-03-03")

    assert harness.submissions_for("TRIPS") == daily("2025-03-01", 2)  # the orphan + only the new window
    assert summary.adopted == 1 and summary.submitted == 1
    assert harness.query(f"SELECT load_status FROM report_jobs WHERE job_id = '{orphan}'") == [("loaded",)]
    assert_exact(harness, "TRIPS", daily("2025-03-01", 2))


@pytest.mark.warehouses(*KINDS)  # on S3 too
def test_loading_a_window_again_replaces_its_rows(sandbox: Sandbox, tmp_path: Path) -> None:
    """A second pipeline with no state reloads the same windows into the same tables: no row is doubled."""
    first = Harness(sandbox, tmp_path, name="tikpay_a")
    first.run(report_types=["TAPS"], start_time="2025-03-01", end_time="2025-03-03")
    second = Harness(sandbox, tmp_path, name="tikpay_b")
    summary = second.run(report_types=["TAPS"], start_time="2025-03-01", end_time="2025-03-03")

    assert len(sandbox.submissions()) == 2 and summary.adopted == 2  # the live jobs are reused, too
    assert summary.windows_loaded == 2
    assert_exact(second, "TAPS", daily("2025-03-01", 2))


def test_a_malformed_file_stops_only_its_window_and_the_next_run_recovers(harness: Harness) -> None:
    harness.sandbox.inject(Fault("malformed_row", endpoint="download", times=3))
    summary = harness.run(report_types=["TAPS"], start_time="2025-03-01", end_time="2025-03-03")

    assert summary.exit_code == EXIT_WINDOWS_FAILED
    assert len(summary.window_errors) == 1 and "malformed" in summary.window_errors[0]
    job_id = summary.window_errors[0].split("job ")[1].split(":")[0]
    assert job_id in {j["jobId"] for j in harness.sandbox.jobs()}  # the message names the job
    assert len(harness.rows_per_window("taps")) == 1  # the other window is loaded

    recovered = harness.run(report_types=["TAPS"], start_time="2025-03-01", end_time="2025-03-03")
    assert recovered.exit_code == EXIT_OK and recovered.submitted == 1  # a new job for the bad file's window
    assert_exact(harness, "TAPS", daily("2025-03-01", 2))


@pytest.mark.warehouses("duckdb")  # stops before anything is loaded
def test_wrong_credentials_stop_with_an_authentication_message(harness: Harness) -> None:
    summary = harness.run(client_secret="not-the-secret", start_time="2025-03-01", end_time="2025-03-02")

    assert summary.exit_code == EXIT_FAILED
    assert "refused client_id/client_secret" in summary.lines()[-1]
    assert "not-the-secret" not in "\n".join(summary.lines()) + harness.output.getvalue()
    assert harness.sandbox.submissions() == []


@pytest.mark.warehouses("duckdb")  # stops before anything is loaded
def test_a_timezone_that_disagrees_with_the_api_stops_before_submitting(harness: Harness) -> None:
    harness.run(report_types=["TRIPS"], start_time="2025-03-01", end_time="2025-03-02", max_wait=0)
    summary = harness.run(
        report_types=["TRIPS"], start_time="2025-03-01", end_time="2025-03-03", timezone="Europe/London"
    )

    assert summary.exit_code == EXIT_BAD_INPUT and "Australia/Sydney" in summary.lines()[-1]
    assert len(harness.sandbox.submissions()) == 1


@pytest.mark.warehouses("duckdb")  # stops before anything is loaded
def test_building_the_source_makes_no_request(harness: Harness) -> None:
    source = tikpay(**harness.settings(start_time="2025-03-01", end_time="2025-03-02"))
    assert list(source.resources) == ["report_jobs", "customers", "payments", "taps", "trips", "run_history"]
    assert harness.sandbox.api_requests == [] and harness.sandbox.download_requests == []


@pytest.mark.warehouses(*KINDS)  # on S3 too
def test_no_secret_reaches_tables_logs_or_downloads(harness: Harness) -> None:
    harness.run(start_time="2025-03-01", end_time="2025-03-02")

    dumped = "\n".join(
        str(row)
        for table in ("report_jobs", "run_history", *REPORT_TABLES.values(), "_dlt_pipeline_state")
        for row in harness.query(f"SELECT * FROM {table}")
    )
    links = [j.get("downloadUrl") for j in harness.sandbox.jobs() if j.get("downloadUrl")]
    for secret in (DEMO_CLIENT_SECRET, DEMO_API_KEY, *(link.split("?")[1] for link in links)):
        assert secret not in dumped and secret not in harness.output.getvalue()
    for request in harness.sandbox.download_requests:
        headers = {name.lower() for name in request["headers"]}
        assert "authorization" not in headers and "x-api-key" not in headers


def test_with_max_wait_zero_each_run_collects_what_the_last_run_submitted(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    """Submit-and-leave mode: every run lists first, loads the previous run's jobs, then submits its own."""
    harness = Harness(make_sandbox(complete_after_list_calls=0), tmp_path)
    first = harness.run(report_types=["TRIPS"], start_time="2025-03-01", end_time="2025-03-02", max_wait=0)
    second = harness.run(report_types=["TRIPS"], start_time="2025-03-01", end_time="2025-03-03", max_wait=0)
    third = harness.run(report_types=["TRIPS"], start_time="2025-03-01", end_time="2025-03-03", max_wait=0)

    assert (first.submitted, first.windows_loaded) == (1, 0)
    assert (second.submitted, second.windows_loaded) == (1, 1)
    assert (third.submitted, third.windows_loaded) == (0, 1)
    assert_exact(harness, "TRIPS", daily("2025-03-01", 2))


def test_a_submission_refused_with_400_fails_only_its_window_and_is_tried_again(harness: Harness) -> None:
    harness.sandbox.inject(Fault("status", endpoint="submit", status=400))
    summary = harness.run(report_types=["TRIPS"], start_time="2025-03-01", end_time="2025-03-03")

    assert summary.exit_code == EXIT_OK and summary.windows_loaded == 2
    assert "refused" in harness.output.getvalue()
    assert_exact(harness, "TRIPS", daily("2025-03-01", 2))


def test_a_column_keeps_the_type_it_was_first_loaded_with_and_widens_when_a_file_needs_it(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    """Types are decided per file: route_id is text in one hour ('L1') and looks numeric in the next ('333').

    Text first: the numeric-looking file is read as text, exactly as written. Numbers first: the
    file with text in that column widens it to text in place, keeping '333', and loads.
    """
    sandbox = make_sandbox(rows_per_hour={"TRIPS": 1})
    hourly = {"report_types": ["TRIPS"], "window": "PT1H"}
    text_first = Harness(sandbox, tmp_path / "text", name="text_first")
    text_first.run(**hourly, start_time="2025-03-01T00:00:00", end_time="2025-03-01T01:00:00")
    summary = text_first.run(**hourly, start_time="2025-03-01T00:00:00", end_time="2025-03-01T02:00:00")
    assert summary.exit_code == EXIT_OK
    assert sorted(r[0] for r in text_first.query("SELECT route_id FROM trips")) == ["333", "L1"]

    numbers_first = Harness(sandbox, tmp_path / "numbers", name="numbers_first")
    numbers_first.run(**hourly, start_time="2025-03-01T01:00:00", end_time="2025-03-01T02:00:00")
    widened = numbers_first.run(**hourly, start_time="2025-03-01T01:00:00", end_time="2025-03-01T03:00:00")
    assert widened.exit_code == EXIT_OK and widened.windows_loaded == 1
    assert sorted(r[0] for r in numbers_first.query("SELECT route_id FROM trips")) == ["333", "F1"]
