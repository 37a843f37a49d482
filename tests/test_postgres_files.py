"""Into PostgreSQL a report goes as CSV files that dlt's COPY job loads as they are.

Every test runs against the real sandbox over loopback and a real PostgreSQL server
($TIKPAY_TEST_POSTGRES): which path the rows took is read from dlt's own trace, and what
landed is compared with the file's text and with the Arrow batches the other warehouses get.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dlt
import pytest
from dlt.common.destination.configuration import CsvFormatConfiguration
from harness import Harness, assert_exact, daily, files_per_step, loaded_jobs
from warehouses import PostgresWarehouse

from tikpay_source.sandbox import Sandbox
from tikpay_source.settings import REPORT_TABLES

# the day Sydney's clocks go back: its 02:00-03:00 is in the file twice
FALL_BACK = ("2025-04-05", "2025-04-07")
ZONE = "Australia/Sydney"


@pytest.fixture
def harness(sandbox: Sandbox, tmp_path: Path, postgres_dsn: str) -> Harness:
    return Harness(sandbox, tmp_path, warehouse=PostgresWarehouse(postgres_dsn, tmp_path))


def test_a_report_goes_to_postgres_as_csv_files_that_dlt_copies_as_they_are(harness: Harness) -> None:
    harness.run(report_types=["TRIPS", "CUSTOMERS"], start_time="2025-03-01", end_time="2025-03-03")

    for table in ("trips", "customers"):
        # no Parquet at extract for normalize to rewrite: the connector's CSV, appended (no window was there)
        assert files_per_step(harness.pipeline(), table) == ({"csv"}, {"csv"}), table
    assert_exact(harness, "TRIPS", daily("2025-03-01", 2))
    assert_exact(harness, "CUSTOMERS", daily("2025-03-01", 2))


def test_a_large_report_goes_as_csv_files_that_dlt_copies_side_by_side(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path, postgres_dsn: str
) -> None:
    """One file per DuckDB thread, each COPYd on a connection of its own; every row lands once."""
    sandbox = make_sandbox(rows_per_hour={"TRIPS": 16_000}, complete_after_list_calls=0)
    harness = Harness(sandbox, tmp_path, warehouse=PostgresWarehouse(postgres_dsn, tmp_path))
    harness.run(report_types=["TRIPS"], start_time="2025-03-03", end_time="2025-03-04", window="P1D")

    jobs = loaded_jobs(harness.pipeline(), "trips")
    assert len(jobs) > 1 and {job.job_file_info.file_format for job in jobs} == {"csv"}
    assert_exact(harness, "TRIPS", daily("2025-03-03", 1))
    counted = [  # dlt's own count of the rows, from the files' metrics at extract
        metrics.items_count
        for step in harness.pipeline().last_trace.last_extract_info.metrics.values()
        for stage in step
        for name, metrics in stage["job_metrics"].items()
        if name.startswith("trips.")
    ]
    assert sum(counted) == harness.sandbox.count_rows("TRIPS", *daily("2025-03-03", 1)[0])


def as_file_text(value: Any) -> str:
    """A value read back from PostgreSQL as the export wrote it: local time, ``true``, ``""`` for NULL."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(ZoneInfo(ZONE)).strftime("%Y-%m-%dT%H:%M:%S")
    return str(value)


@pytest.mark.parametrize(
    "report_type, key, tricky",
    [("CUSTOMERS", "customer_id", (",", "'", "\n", "ë", "Ō")), ("TRIPS", "trip_id", (",", '"', "&"))],
)
def test_values_read_back_from_postgres_are_the_files_text_exactly(
    harness: Harness, report_type: str, key: str, tricky: tuple[str, ...]
) -> None:
    """Commas, quotes, line breaks, non-ASCII and empty values, over a day with a repeated hour."""
    harness.run(report_types=[report_type], start_time=FALL_BACK[0], end_time=FALL_BACK[1])

    truth = [
        row
        for start, end in daily(FALL_BACK[0], 2)
        for row in harness.sandbox.ground_truth(report_type, start, end)
    ]
    columns = list(truth[0])
    loaded = harness.query(f"SELECT {', '.join(columns)} FROM {REPORT_TABLES[report_type]} ORDER BY {key}")
    numeric = {c for i, c in enumerate(columns) if any(type(row[i]) in (int, float) for row in loaded)}
    # numbers are compared as numbers ("7.0" and 7.0), everything else as the file's text
    expected = sorted(
        (tuple(float(r[c]) if c in numeric and r[c] else r[c] for c in columns) for r in truth),
        key=lambda row: float(row[columns.index(key)]),
    )
    got = [
        tuple(
            v if c in numeric and v is not None else as_file_text(v)
            for c, v in zip(columns, row, strict=True)
        )
        for row in loaded
    ]
    assert got == expected
    texts = "".join(r[c] for r in truth for c in columns)
    assert [t for t in tricky if t not in texts] == []  # the sandbox's tricky fields are in the sample
    assert any(v == "" for r in truth for v in r.values())


def test_reloading_a_window_into_postgres_replaces_its_rows(
    sandbox: Sandbox, tmp_path: Path, postgres_dsn: str
) -> None:
    """A second pipeline with no state loads the same windows again: the merge replaces them, CSV or not."""
    warehouse = PostgresWarehouse(postgres_dsn, tmp_path)
    first = Harness(sandbox, tmp_path / "a", name="tikpay_a", warehouse=warehouse)
    first.run(report_types=["PAYMENTS"], start_time="2025-03-01", end_time="2025-03-03")
    before = first.query("SELECT * EXCLUDE (_tikpay_job_id) FROM payments ORDER BY ALL")
    second = Harness(sandbox, tmp_path / "b", name="tikpay_b", warehouse=warehouse)
    second.run(report_types=["PAYMENTS"], start_time="2025-03-01", end_time="2025-03-03")

    assert files_per_step(second.pipeline(), "payments") == ({"csv"}, {"csv", "sql"})
    assert_exact(second, "PAYMENTS", daily("2025-03-01", 2))
    assert second.query("SELECT * EXCLUDE (_tikpay_job_id) FROM payments ORDER BY ALL") == before


def test_the_file_is_written_with_the_delimiter_the_destination_is_configured_with(
    harness: Harness, postgres_dsn: str
) -> None:
    """dlt's COPY job reads its csv_format setting: a file in another dialect would load wrong."""
    pipeline = dlt.pipeline(
        "tikpay_format",
        pipelines_dir=str(harness.pipelines_dir),
        destination=dlt.destinations.postgres(postgres_dsn, csv_format=CsvFormatConfiguration(delimiter="|")),
        dataset_name=harness.warehouse.dataset,
    )
    pipeline.run(harness.source(report_types=["TRIPS"], start_time="2025-03-01", end_time="2025-03-02"))

    assert files_per_step(pipeline, "trips") == ({"csv"}, {"csv"})
    assert_exact(harness, "TRIPS", daily("2025-03-01", 1))
    stops = harness.query("SELECT count(*) FROM trips WHERE origin_stop_name = 'Central, Platform 3'")[0][0]
    truth = harness.sandbox.ground_truth("TRIPS", *daily("2025-03-01", 1)[0])
    assert stops == sum(row["origin_stop_name"] == "Central, Platform 3" for row in truth) > 0


def test_files_left_by_a_killed_run_are_removed_by_the_next(harness: Harness) -> None:
    harness.run(report_types=["TAPS"], start_time="2025-03-01", end_time="2025-03-02")
    work = Path(harness.pipeline().working_dir)
    # this version's scratch folder, and that of an earlier version (which wrote CSV files only)
    leftovers = [
        work / "tikpay-file-killed" / "report.csv" / "data_0.csv",
        work / "tikpay-csv-killed" / "report.csv",
    ]
    for leftover in leftovers:
        leftover.parent.mkdir(parents=True)
        leftover.write_text("a,b\n")
    harness.run(report_types=["TAPS"], start_time="2025-03-01", end_time="2025-03-03")

    assert not any(leftover.exists() for leftover in leftovers)
    assert not list(Path(harness.pipeline().working_dir).glob("tikpay-*-*"))  # nor the run's own
    assert_exact(harness, "TAPS", daily("2025-03-01", 2))
