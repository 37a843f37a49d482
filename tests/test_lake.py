"""Delta tables on dlt's filesystem destination, in a local folder and on an S3 API server: exactly once.

Two pipelines with no shared state, a reload with fewer rows, lost dlt state after the
Delta commit, and a run killed while its load is half done all leave each row once,
with counts equal to the sandbox's ground truth.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cli import cli_env, kill_when, one_day_args, run_cli
from harness import Harness, assert_exact, daily, loading_into
from warehouses import FilesystemWarehouse, Warehouse

from tikpay_source.loading.views import create_views, lake_queries
from tikpay_source.sandbox import Sandbox
from tikpay_source.settings import EXIT_BAD_INPUT, EXIT_OK, EXIT_WINDOWS_FAILED, REPORT_TABLES, REPORT_TYPES

pytestmark = pytest.mark.warehouses("filesystem", "s3")
MakeSandbox = Callable[..., Sandbox]


def assert_one_row_per_job(h: Harness, jobs: int) -> None:
    assert h.query("SELECT count(*), count(DISTINCT job_id) FROM report_jobs") == [(jobs, jobs)]


@pytest.mark.warehouses("filesystem")  # the same on S3: fsspec's backend is all that differs
def test_two_pipelines_without_shared_state_load_overlapping_windows_once(
    sandbox: Sandbox, tmp_path: Path, warehouse: Warehouse
) -> None:
    first = Harness(sandbox, tmp_path / "machine_a", name="tikpay_a", warehouse=warehouse)
    first.run(start_time="2025-03-01", end_time="2025-03-03")
    second = Harness(sandbox, tmp_path / "machine_b", name="tikpay_b", warehouse=warehouse)
    summary = second.run(start_time="2025-03-02", end_time="2025-03-04")

    assert summary.exit_code == EXIT_OK and summary.windows_loaded == 8
    for report_type in REPORT_TYPES:
        assert second.warehouse.is_delta(REPORT_TABLES[report_type])  # type: ignore[attr-defined]
        assert_exact(second, report_type, daily("2025-03-01", 3))
    assert_one_row_per_job(second, len(sandbox.submissions()))
    assert second.query("SELECT DISTINCT load_status FROM report_jobs") == [("loaded",)]


def test_a_reloaded_window_with_fewer_rows_leaves_exactly_the_new_rows(
    make_sandbox: MakeSandbox, tmp_path: Path, warehouse: Warehouse
) -> None:
    """The report for 2025-03-02 shrank at the source: its old rows go, 2025-03-01 is untouched."""
    before, after = make_sandbox(rows_per_hour={"TAPS": 40}), make_sandbox(rows_per_hour={"TAPS": 15})
    first = Harness(before, tmp_path / "a", name="tikpay_a", warehouse=warehouse)
    first.run(report_types=["TAPS"], start_time="2025-03-01", end_time="2025-03-03")
    again = Harness(after, tmp_path / "b", name="tikpay_b", warehouse=warehouse)
    again.run(report_types=["TAPS"], start_time="2025-03-02", end_time="2025-03-03")

    old_day, new_day = daily("2025-03-01", 2)
    expected = first.truth_per_window("TAPS", [old_day]) | again.truth_per_window("TAPS", [new_day])
    assert expected[new_day[0]] < first.truth_per_window("TAPS", [new_day])[new_day[0]]
    assert again.rows_per_window("taps") == expected
    # the merge's scope is this load's window alone: the other window's rows were never in play
    scope = again.pipeline().default_schema.tables["taps"]["x-merge-destination-scope"]  # type: ignore[typeddict-item]
    assert scope == "{table}._tikpay_window_start IN (TIMESTAMP '2025-03-02 00:00:00')"


def test_dlt_state_lost_after_the_delta_commit_changes_nothing_on_reload(
    sandbox: Sandbox, tmp_path: Path, warehouse: Warehouse
) -> None:
    """A crash after the Delta tables were committed but before dlt recorded the load and its state.

    That is the lake as a finished load leaves it, less dlt's record of the load
    (``_dlt_loads``, ``_dlt_pipeline_state``) and the local pipeline: the next run
    knows nothing, loads the same windows again, and each row is still there once.
    """
    assert isinstance(warehouse, FilesystemWarehouse)
    crashed = Harness(sandbox, tmp_path / "crashed", warehouse=warehouse)
    crashed.run(report_types=["TRIPS", "TAPS"], start_time="2025-03-01", end_time="2025-03-03")
    fs = warehouse.filesystem()
    for bookkeeping in ("_dlt_loads", "_dlt_pipeline_state"):
        records = fs.glob(f"{warehouse.folder}/{bookkeeping}/*.jsonl")
        assert records
        fs.rm(records)

    rerun = Harness(sandbox, tmp_path / "fresh", warehouse=warehouse)  # same pipeline name, no local state
    summary = rerun.run(report_types=["TRIPS", "TAPS"], start_time="2025-03-01", end_time="2025-03-03")

    assert summary.windows_loaded == 4 and summary.adopted == 4  # it did load every window again
    for report_type in ("TRIPS", "TAPS"):
        assert_exact(rerun, report_type, daily("2025-03-01", 2))
    assert_one_row_per_job(rerun, 4)


@pytest.mark.warehouses("filesystem")
def test_a_run_killed_after_the_delta_tables_were_written_is_resumed_exactly_once(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox = make_sandbox(rows_per_hour={"TRIPS": 3000, "TAPS": 3000}, complete_after_list_calls=0)
    lake = FilesystemWarehouse(tmp_path / "lake")
    env = cli_env(
        sandbox, tmp_path, DESTINATION_TYPE="filesystem", DESTINATION__FILESYSTEM__BUCKET_URL=str(lake.bucket)
    )
    args = [
        "--report-types",
        "TRIPS,TAPS",
        "--start",
        "2025-03-01",
        "--end",
        "2025-03-03",
        "--poll-interval",
        "0.05",
    ]
    load_dir = tmp_path / "dlt" / "pipelines" / "tikpay" / "load"
    kill_when(args, env, tmp_path, lambda: lake.is_delta("trips"))
    assert any((load_dir / "normalized").glob("*")), "the load finished before the kill"
    assert not any(lake.filesystem().glob(f"{lake.folder}/_dlt_loads/*")), "dlt recorded the load"

    resumed = run_cli(args, env, tmp_path)

    assert resumed.returncode == EXIT_OK, resumed.stdout + resumed.stderr
    assert "finishing the load left pending" in resumed.stderr
    submitted = [(s["reportType"], s["startTime"]) for s in sandbox.submissions()]
    assert len(submitted) == len(set(submitted)) == 4
    for report_type, table in (("TRIPS", "trips"), ("TAPS", "taps")):
        truth = {w: sandbox.count_rows(report_type, w, e) for w, e in daily("2025-03-01", 2)}
        window = lake.window_text("_tikpay_window_start")
        assert dict(lake.query(f"SELECT {window}, count(*) FROM {table} GROUP BY 1")) == truth
    assert lake.query("SELECT count(*), count(DISTINCT job_id) FROM report_jobs") == [(4, 4)]


@pytest.mark.warehouses("filesystem")
def test_delta_tables_read_with_deltalake_hold_the_live_rows_only(sandbox: Sandbox, tmp_path: Path) -> None:
    """The reader a lakehouse user runs: ``deltalake``; the Parquet files on disk include removed ones."""
    first = Harness(sandbox, tmp_path / "a", name="tikpay_a")
    first.run(report_types=["TRIPS"], start_time="2025-03-01", end_time="2025-03-02")
    Harness(sandbox, tmp_path / "b", name="tikpay_b", warehouse=first.warehouse).run(
        report_types=["TRIPS"], start_time="2025-03-01", end_time="2025-03-02"
    )

    lake = first.warehouse
    assert isinstance(lake, FilesystemWarehouse)
    truth = sandbox.count_rows("TRIPS", *daily("2025-03-01", 1)[0])
    assert lake.delta_table("trips").to_pyarrow_table().num_rows == truth
    on_disk = list(Path(lake.folder, "trips").rglob("*.parquet"))
    assert len(on_disk) > len(
        lake.delta_table("trips").file_uris()
    )  # the reload's removed files are still there
    assert lake.delta_table("trips").metadata().partition_columns == ["_tikpay_window_start"]


@pytest.mark.warehouses("filesystem")
def test_without_the_delta_extra_the_script_names_it_in_one_line(sandbox: Sandbox, tmp_path: Path) -> None:
    hidden = tmp_path / "no_deltalake"
    hidden.mkdir()
    (hidden / "deltalake.py").write_text("raise ImportError(\"No module named 'deltalake'\")\n")
    env = cli_env(
        sandbox,
        tmp_path,
        DESTINATION_TYPE="filesystem",
        DESTINATION__FILESYSTEM__BUCKET_URL=str(tmp_path / "lake"),
        PYTHONPATH=str(hidden),
    )
    result = run_cli(one_day_args("TRIPS"), env, tmp_path)

    assert result.returncode == EXIT_BAD_INPUT and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: table_format 'delta' needs the deltalake package: pip install -e \".[delta]\" "
        "(or table_format 'parquet' for plain, append-only files)"
    )
    assert sandbox.api_requests == []
    plain = run_cli([*one_day_args("TRIPS"), "--table-format", "parquet"], env, tmp_path)
    assert plain.returncode == EXIT_OK, plain.stderr  # plain files need no deltalake
    assert FilesystemWarehouse(tmp_path / "lake").files("trips")


@pytest.mark.warehouses("filesystem")
def test_the_bi_queries_give_the_lake_the_warehouses_daily_figures(sandbox: Sandbox, tmp_path: Path) -> None:
    """The views' SELECTs run by DuckDB over the Delta tables equal the views made in DuckDB."""
    days = {"start_time": "2025-04-05", "end_time": "2025-04-07"}  # across the 2025-04-06 fall-back
    lake = Harness(sandbox, tmp_path / "lake")
    lake.run(**days)
    with loading_into("duckdb"):
        warehouse = Harness(sandbox, tmp_path / "duckdb")
    warehouse.run(**days)
    assert create_views(warehouse.pipeline()) == [f"views: {name} ready" for name in lake_queries("UTC")]

    zone = sandbox.settings.timezone
    for name, select in lake_queries(zone).items():
        columns = "report_type, loaded_until" if name == "report_freshness" else "*"  # not the age: it grows
        from_lake = sorted(lake.query(f"SELECT {columns} FROM ({select})"), key=repr)
        in_warehouse = sorted(warehouse.query(f"SELECT {columns} FROM {name}"), key=repr)
        assert from_lake and from_lake == in_warehouse, name


@pytest.mark.warehouses("filesystem")  # the same on S3: fsspec's backend is all that differs
def test_on_delta_tables_a_column_that_must_widen_refuses_its_window(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    """Delta has one schema per table and dlt cannot change a column's type in it: one clear line, no stuck load.

    It is the destination refusing, not a bad file: the job is kept, never submitted again.
    """
    sandbox = make_sandbox(rows_per_hour={"TRIPS": 1})  # route_id is 333 in one hour, F1 in the next
    hourly = {"report_types": ["TRIPS"], "window": "PT1H", "start_time": "2025-03-01T01:00:00"}
    with loading_into("filesystem"):
        harness = Harness(sandbox, tmp_path)
        harness.run(**hourly, end_time="2025-03-01T02:00:00")
        refused = harness.run(**hourly, end_time="2025-03-01T03:00:00")

        submitted = len(sandbox.submissions())
        again = harness.run(**hourly, end_time="2025-03-01T03:00:00")

    assert refused.exit_code == EXIT_WINDOWS_FAILED
    (error,) = refused.window_errors
    assert "route_id must widen from" in error and "on Delta tables" in error
    assert not harness.pipeline().has_pending_data  # refused before the load: nothing is retried forever
    assert harness.query("SELECT count(*) FROM trips") == [(1,)]
    # the destination's problem, not the file's: the window keeps its job, nothing is submitted again
    assert submitted == 2 and len(sandbox.submissions()) == submitted
    assert again.exit_code == EXIT_WINDOWS_FAILED and again.window_errors == refused.window_errors
