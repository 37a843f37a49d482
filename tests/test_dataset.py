"""Reading the data back the dlt way: ``pipeline.dataset()`` on every table, as the README shows.

dlt 1.31's dataset breaks with sqlglot >= 30.22 and duckdb >= 2.0; the pins in
pyproject.toml keep it working, and these tests notice if they stop doing so.
"""

from __future__ import annotations

from pathlib import Path

import dlt
import pytest
from cli import cli_env, run_cli
from harness import Harness, daily

from tikpay_source.sandbox import Sandbox
from tikpay_source.settings import DATASET_NAME, EXIT_OK, JOBS_TABLE, REPORT_TABLES, SANDBOX_PIPELINE_NAME

pytestmark = pytest.mark.e2e  # runs the script as a process

TABLES = (JOBS_TABLE, *REPORT_TABLES.values())


def assert_dataset_reads(pipeline: dlt.Pipeline, expected: dict[str, int]) -> None:
    """Every table through ``.fetchall()``, ``.arrow()``, ``row_counts()`` and a SQL query, with exact counts."""
    dataset = pipeline.dataset()
    counts = dict(dataset.row_counts(table_names=list(TABLES)).fetchall())
    assert counts == expected
    for table in TABLES:
        assert len(dataset[table].fetchall()) == expected[table]
        assert dataset[table].arrow().num_rows == expected[table]
        assert dataset(f"SELECT count(*) FROM {table}").fetchall() == [(expected[table],)]


def test_pipeline_dataset_reads_every_table_after_the_quickstart(tmp_path: Path) -> None:
    result = run_cli(["--sandbox"], cli_env(None, tmp_path), tmp_path)
    assert result.returncode == EXIT_OK, result.stderr

    pipeline = dlt.attach(SANDBOX_PIPELINE_NAME, pipelines_dir=str(tmp_path / "dlt" / "pipelines"))
    assert pipeline.dataset_name == DATASET_NAME
    jobs = pipeline.dataset()(
        "SELECT report_type, window_start, window_end FROM report_jobs WHERE load_status = 'loaded'"
    ).fetchall()
    assert len(jobs) == 8
    truth_source = Sandbox()  # the same settings as the quickstart's: the same rows
    expected = {JOBS_TABLE: 8} | {table: 0 for table in REPORT_TABLES.values()}
    for report_type, start, end in jobs:
        expected[REPORT_TABLES[report_type]] += truth_source.count_rows(
            report_type, start.isoformat(), end.isoformat()
        )
    assert all(expected.values())
    assert_dataset_reads(pipeline, expected)


@pytest.mark.warehouses("duckdb", "postgres")
def test_pipeline_dataset_reads_every_table_from_the_warehouse(sandbox: Sandbox, tmp_path: Path) -> None:
    h = Harness(sandbox, tmp_path)
    h.run(start_time="2025-03-01", end_time="2025-03-02")

    window = daily("2025-03-01", 1)[0]
    expected = {JOBS_TABLE: 4} | {
        table: sandbox.count_rows(report_type, *window) for report_type, table in REPORT_TABLES.items()
    }
    assert_dataset_reads(h.pipeline(), expected)
