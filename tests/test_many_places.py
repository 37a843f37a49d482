"""Many machines, one API key, one destination: the script run as separate processes, each with an
empty dlt folder, ledger folder and home, sharing the ledger and run lock in PostgreSQL or in S3.

The sandbox plays the API; a "day" passes by moving its clock and the shared ledger's entries
(whose times are the database's clock, or the writers') by 24 hours.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from cli import SCRIPT, cli_env, into_warehouse, kill_when, run_cli
from warehouses import FilesystemWarehouse, S3Server, S3Warehouse, Warehouse

from tikpay_source.sandbox import Sandbox
from tikpay_source.settings import EXIT_BAD_INPUT, EXIT_OK, EXIT_QUOTA_STOP, LEDGER_TABLE, QUOTA_LIMIT

pytestmark = [pytest.mark.e2e, pytest.mark.warehouses("postgres", "s3")]
DAY = 86_400
BACKFILL = [
    "--report-types",
    "TRIPS",
    "--start",
    "2025-03-01",
    "--end",
    "2025-03-25",
    "--poll-interval",
    "0.1",
]


def machine(
    sandbox: Sandbox, tmp_path: Path, name: str, warehouse: Warehouse, **extra: str
) -> tuple[list[str], dict[str, str], Path]:
    """One machine's flags, environment and working folder: nothing of it is shared but the key and the destination."""
    folder = tmp_path / name
    (folder / "home").mkdir(parents=True)
    args, env = into_warehouse(warehouse)
    env = cli_env(
        sandbox, folder, HOME=str(folder / "home"), SOURCES__TIKPAY__LEDGER="destination",
        SOURCES__TIKPAY__LEDGER_DIR=str(folder / "ledger"), **env, **extra,
    )  # fmt: skip
    return args, env, folder


def start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """The script in the background; its output goes to files (a full pipe would stall it)."""
    out, err = (open(cwd / name, "w") for name in ("stdout", "stderr"))  # noqa: SIM115 - closed by the child's exit
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *args, "--json"], env=env, cwd=cwd, stdout=out, stderr=err
    )


def finish(process: subprocess.Popen[str], cwd: Path) -> dict[str, object]:
    process.wait(timeout=240)
    err = (cwd / "stderr").read_text()
    assert process.returncode in (EXIT_OK, EXIT_QUOTA_STOP), err
    assert "Traceback" not in err
    return json.loads((cwd / "stdout").read_text())


def a_day_passes(sandbox: Sandbox, warehouse: Warehouse) -> None:
    """The sandbox's clock and every time in the shared ledger move 24 hours."""
    sandbox.clock.advance(DAY)
    if isinstance(warehouse, FilesystemWarehouse):
        fs = warehouse.filesystem()
        for path in fs.find(f"{warehouse.folder}/{LEDGER_TABLE}"):
            entry = json.loads(fs.cat(path))
            entry = {k: v - DAY if k in ("at", "until") else v for k, v in entry.items()}
            fs.pipe_file(path, json.dumps(entry).encode())
        return
    warehouse.query(
        f"UPDATE {LEDGER_TABLE} SET recorded_at = recorded_at - {DAY}, until_at = until_at - {DAY} RETURNING 1"
    )


def test_machines_sharing_a_key_spend_one_quota_and_load_every_row_once(
    sandbox: Sandbox, tmp_path: Path, warehouse: Warehouse
) -> None:
    machines = [
        machine(sandbox, tmp_path, name, warehouse, SOURCES__TIKPAY__LOCK_WAIT="200")
        for name in ("ci", "laptop")
    ]
    machines = [([*args, *BACKFILL], env, cwd) for args, env, cwd in machines]
    summaries = []
    for day in range(4):
        if day == 0:  # one after the other: the second finds the day's quota spent
            runs = [finish(start(*m), m[2]) for m in machines]
        else:  # at the same moment: one holds the lock, the other waits for it, then for the quota
            started = [(start(*m), m[2]) for m in machines]
            runs = [finish(*s) for s in started]
        assert sandbox.quota_used() <= QUOTA_LIMIT
        summaries += runs
        if any(r["exit_code"] == EXIT_OK and not r["waiting"] and not r["pending"] for r in runs):
            break
        a_day_passes(sandbox, warehouse)

    assert not [r for r in sandbox.api_requests if r["status"] == 429]
    submitted = Counter((s["startTime"], s["endTime"]) for s in sandbox.submissions("TRIPS"))
    assert submitted and max(submitted.values()) == 1, submitted
    assert len(submitted) == 24 and day >= 1
    second_of_the_first_day = summaries[1]
    assert (
        second_of_the_first_day["exit_code"] == EXIT_QUOTA_STOP and second_of_the_first_day["requests"] <= 1
    )
    loaded = dict(warehouse.query(
        f"SELECT {warehouse.window_text('_tikpay_window_start')}, count(*) FROM trips GROUP BY 1"
    ))  # fmt: skip
    truth = {start: sandbox.count_rows("TRIPS", start, end) for start, end in submitted}
    assert loaded == truth


@pytest.mark.warehouses("postgres")
def test_a_killed_lock_holder_frees_the_pipeline_once_its_lease_runs_out(
    make_sandbox: object, tmp_path: Path, warehouse: Warehouse
) -> None:
    sandbox = make_sandbox(complete_after_list_calls=0, complete_after_seconds=30.0)
    lease = {"SOURCES__TIKPAY__LOCK_LEASE": "2", "SOURCES__TIKPAY__LOCK_WAIT": "30"}
    args, env, cwd = machine(sandbox, tmp_path, "killed", warehouse, **lease)
    one_day = [
        "--report-types",
        "TRIPS",
        "--start",
        "2025-03-01",
        "--end",
        "2025-03-02",
        "--poll-interval",
        "0.1",
    ]
    kill_when([*args, *one_day], env, cwd, lambda: bool(sandbox.submissions()))
    sandbox.clock.advance(60)  # its job is done now

    args, env, cwd = machine(sandbox, tmp_path, "next", warehouse, **lease)
    result = run_cli([*args, *one_day, "--json"], env, cwd)

    assert result.returncode == EXIT_OK, result.stderr
    assert len(sandbox.submissions()) == 1  # the killed run's job was adopted, not submitted again
    assert warehouse.query("SELECT count(*) FROM trips")[0][0] == sandbox.count_rows(
        "TRIPS", "2025-03-01T00:00:00", "2025-03-02T00:00:00"
    )


@pytest.mark.warehouses("postgres")
def test_an_unreachable_shared_ledger_is_one_line_and_no_request(
    sandbox: Sandbox, tmp_path: Path, warehouse: Warehouse
) -> None:
    args, env, cwd = machine(sandbox, tmp_path, "offline", warehouse)
    env["DESTINATION__POSTGRES__CREDENTIALS"] = "postgresql://tikpay:secret-pw@127.0.0.1:9/none"
    result = run_cli([*args, "--report-types", "TRIPS"], env, cwd)

    assert result.returncode == EXIT_BAD_INPUT
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: the request ledger in postgres dataset ") and "secret-pw" not in line
    assert not sandbox.api_requests


@pytest.mark.warehouses("s3")
def test_a_read_only_bucket_is_one_line_and_no_request(
    sandbox: Sandbox, tmp_path: Path, read_only_s3: S3Server
) -> None:
    warehouse = S3Warehouse(read_only_s3, tmp_path)
    args, env, cwd = machine(sandbox, tmp_path, "reader", warehouse)
    result = run_cli([*args, "--report-types", "TRIPS"], env, cwd)

    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    (line,) = result.stderr.strip().splitlines()
    # moto refuses this user's listing before its policy is read (a signature it computes differently
    # for a prefix with a slash); real S3 lists and refuses the write: both are this one line
    assert line.startswith(f"error: the request ledger in {warehouse.bucket_url}/"), line
    assert "could not be" in line and read_only_s3.secret not in line
    assert not sandbox.api_requests
