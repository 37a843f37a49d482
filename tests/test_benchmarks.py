"""The benchmark scripts still run, on a small report, and print the lines the README quotes.

Their figures are not asserted (timings belong to the scripts, never to tests); what is
checked is that every case loads exactly the rows the sandbox rendered (the script exits
non-zero otherwise) and that the last lines name each target.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from warehouses import POSTGRES_DSN_VARIABLE

pytestmark = pytest.mark.e2e  # runs the benchmark scripts, each a process with a sandbox of its own

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_benchmark(script: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    """The script's output lines, after checking that it exited 0."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


def test_the_load_benchmark_runs_every_case_and_prints_the_targets(tmp_path: Path) -> None:
    lines = run_benchmark("bench_load.py", "--rows", "5000", "--big-rows", "0", "--no-postgres", cwd=tmp_path)
    for label in ("duckdb read_csv 5,000", "dlt floor 5,000", "file floor 5,000"):
        assert any(line.startswith(label) for line in lines), label
    for label in ("file floor 5,000", "connector csv 5,000", "connector xml 5,000"):
        (line,) = [line for line in lines if line.startswith(label)]
        assert " x DuckDB  [parquet by DuckDB]  (extract " in line, label  # DuckDB's file, appended: no merge
    assert not any("postgres" in line.lower() for line in lines)
    whole = [line for line in lines if line.startswith("whole process, ")]
    assert lines[-len(whole) :] == whole and len(whole) == 2  # start to exit, each beside its native loader
    assert whole[0].startswith("whole process, CSV into DuckDB, 5,000 rows: script ")
    assert " s, python read_csv " in whole[0] and " x (target <= 1.6); peak " in whole[0]
    assert (
        whole[1].startswith("whole process, XML into DuckDB, 5,000 rows: ") and "(target <= 3.0)" in whole[1]
    )
    last = lines[-len(whole) - 5 : -len(whole)]
    assert last[0].startswith("CSV end to end: ") and last[0].endswith("(target <= 2.0)")
    assert last[1].startswith("XML end to end: ") and last[1].endswith("(target <= 4.0)")
    assert last[2].startswith("dlt's floor (bare Arrow batches, appended): ")
    assert "the file floor (a Parquet file DuckDB wrote, imported): " in last[2]
    assert last[3].startswith("connector peak memory, CSV into DuckDB: 5,000 rows ")
    assert last[4].startswith("connector peak memory, XML into DuckDB: 5,000 rows ")


def test_the_load_benchmark_loads_into_postgres_beside_postgres_own_copy(
    tmp_path: Path, postgres_dsn: str
) -> None:
    env = {**os.environ, POSTGRES_DSN_VARIABLE: postgres_dsn}
    args = ("--rows", "5000", "--big-rows", "0")
    lines = run_benchmark("bench_load.py", *args, cwd=tmp_path, env=env)
    (copy,) = [line for line in lines if line.startswith("postgres COPY 5,000 ")]
    for file_type in ("csv", "xml"):
        (connector,) = [line for line in lines if line.startswith(f"connector {file_type} pg 5,000 ")]
        assert " x COPY  [csv]  (extract " in connector  # the connector's CSV files, appended: no merge
        assert " peak " in copy and " peak " in connector
        (target,) = [
            line for line in lines if line.startswith(f"PostgreSQL, {file_type.upper()} end to end: ")
        ]
        assert " x PostgreSQL's own COPY (" in target and target.endswith("(target <= 3.0)")
    whole = [line for line in lines if line.startswith("whole process, ")]
    assert len(whole) == 4 and lines[-4:] == whole
    assert whole[2].startswith("whole process, CSV into PostgreSQL, 5,000 rows: script ")
    assert " s, psql \\copy " in whole[2] and "(target <= 2.0)" in whole[2]
    assert lines[-5].startswith("connector peak memory, XML into PostgreSQL: 5,000 rows ")
    assert lines[-5].endswith("(target <= 400 MB)")


def test_the_request_benchmark_runs_and_meets_its_daily_target_on_a_short_simulation(tmp_path: Path) -> None:
    # a short README backfill too: the benchmark's own (from 2025-01-01) loads over a million rows
    args = ["--days", "3", "--backfill-days", "8", "--since", "2026-10-01"]
    lines = run_benchmark("bench_requests.py", *args, cwd=tmp_path)
    assert any(line.startswith("(a) daily, every later run         runs   2  jobs    8") for line in lines)
    for label in ("(b) 8-day backfill", "(c) backfill from 2026-10-01"):
        (line,) = [line for line in lines if line.startswith(label)]
        assert (
            "(lower bound " in line and "days of quota " in line and "rows loaded by the first run " in line
        )
    assert lines[-1] == "daily incremental run: 1.250 requests per window (target <= 1.25): met"
