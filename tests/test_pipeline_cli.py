"""``python pipelines/tikpay.py`` as users and schedulers run it: flags, exit codes, one-line errors, crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from tikpay_source.sandbox import DEMO_API_KEY, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox
from tikpay_source.settings import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK

SCRIPT = Path(__file__).resolve().parent.parent / "pipelines" / "tikpay.py"


def cli_env(sandbox: Sandbox | None, tmp: Path, **extra: str) -> dict[str, str]:
    """A clean environment: the sandbox's URLs and demo credentials, dlt's data dir in ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env["DLT_DATA_DIR"] = str(tmp / "dlt")
    if sandbox is not None:
        env |= {
            "SOURCES__TIKPAY__BASE_URL": sandbox.base_url,
            "SOURCES__TIKPAY__TOKEN_URL": sandbox.token_url,
            "SOURCES__TIKPAY__CLIENT_ID": DEMO_CLIENT_ID,
            "SOURCES__TIKPAY__CLIENT_SECRET": DEMO_CLIENT_SECRET,
            "SOURCES__TIKPAY__API_KEY": DEMO_API_KEY,
        }
    return env | extra


def run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def test_help_lists_the_common_flags(tmp_path: Path) -> None:
    result = run_cli(["--help"], cli_env(None, tmp_path), tmp_path)
    assert result.returncode == 0
    for flag in ("--report-types", "--start", "--end", "--window", "--file-type", "--destination", "--sandbox"):
        assert flag in result.stdout


@pytest.mark.parametrize(
    "args, names",
    [
        (["--report-types", "TRIPS,BUSES"], ["'BUSES'", "CUSTOMERS, PAYMENTS, TAPS, TRIPS"]),
        (["--window", "P1M"], ["'P1M'", "days"]),
        (["--window", "one day"], ["'one day'", "ISO 8601"]),
        (["--start", "2025-03-05", "--end", "2025-03-01"], ["2025-03-05", "not before", "2025-03-01"]),
        (["--start", "yesterday"], ["'yesterday'", "YYYY-MM-DD"]),
        (["--timezone", "Mars/Olympus_Mons"], ["'Mars/Olympus_Mons'", "IANA"]),
        (["--file-type", "json"], ["'json'", "csv", "xml"]),
        (["--max-requests", "0"], ["max_requests", "at least 1"]),
    ],
)
def test_bad_flags_fail_before_any_request_with_one_line(
    sandbox: Sandbox, tmp_path: Path, args: list[str], names: list[str]
) -> None:
    result = run_cli(args, cli_env(sandbox, tmp_path), tmp_path)

    assert result.returncode == EXIT_BAD_INPUT
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert all(name in last for name in names), last
    assert sandbox.api_requests == []


def test_missing_credentials_are_named_without_a_traceback(tmp_path: Path) -> None:
    result = run_cli(["--start", "2025-03-01"], cli_env(None, tmp_path), tmp_path)
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stderr.strip().splitlines() == [
        "error: client_id is missing; set it in .dlt/secrets.toml under [sources.tikpay] or as SOURCES__TIKPAY__CLIENT_ID"
    ]


def test_a_bad_environment_value_is_one_line(sandbox: Sandbox, tmp_path: Path) -> None:
    env = cli_env(sandbox, tmp_path, SOURCES__TIKPAY__POLL_INTERVAL="often")
    result = run_cli(["--start", "2025-03-01"], env, tmp_path)
    assert result.returncode == EXIT_BAD_INPUT and "Traceback" not in result.stderr
    assert "poll_interval" in result.stderr and "often" in result.stderr


def test_wrong_credentials_exit_with_an_authentication_message(sandbox: Sandbox, tmp_path: Path) -> None:
    env = cli_env(sandbox, tmp_path, SOURCES__TIKPAY__CLIENT_SECRET="wrong-secret-123")
    result = run_cli(["--start", "2025-03-01", "--end", "2025-03-02"], env, tmp_path)
    assert result.returncode == EXIT_FAILED
    assert "Traceback" not in result.stderr + result.stdout
    assert "refused client_id/client_secret" in result.stdout.strip().splitlines()[-1]
    assert "wrong-secret-123" not in result.stdout + result.stderr


def test_sandbox_quickstart_loads_into_a_local_duckdb_file_and_prints_a_summary(tmp_path: Path) -> None:
    result = run_cli(["--sandbox"], cli_env(None, tmp_path), tmp_path)

    assert result.returncode == EXIT_OK, result.stderr
    out = result.stdout
    assert "windows loaded: 8" in out and "requests spent:" in out and "rows loaded into trips:" in out
    with duckdb.connect(str(tmp_path / "tikpay_sandbox.duckdb"), read_only=True) as con:
        loaded = con.execute("SELECT count(*) FROM tikpay_data.report_jobs WHERE load_status = 'loaded'").fetchone()
    assert loaded == (8,)
    again = run_cli(["--sandbox"], cli_env(None, tmp_path), tmp_path)
    assert again.returncode == EXIT_OK and "windows loaded: 0" in again.stdout


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("kill_after_submissions", [1, 4])
def test_a_run_killed_after_submitting_resumes_without_submitting_again(
    sandbox: Sandbox, tmp_path: Path, kill_after_submissions: int
) -> None:
    """SIGKILL once jobs are submitted (dlt state never saved); the next run adopts them: no duplicate."""
    args = ["--report-types", "TRIPS,TAPS", "--start", "2025-03-01", "--end", "2025-03-03", "--max-wait", "60"]
    env = cli_env(sandbox, tmp_path)
    slow = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args, "--poll-interval", "30"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: len(sandbox.submissions()) >= kill_after_submissions)
    finally:
        slow.send_signal(signal.SIGKILL)
        slow.wait()

    resumed = run_cli([*args, "--poll-interval", "0.1"], env, tmp_path)

    assert resumed.returncode == EXIT_OK, resumed.stdout + resumed.stderr
    submitted = [(s["reportType"], s["startTime"]) for s in sandbox.submissions()]
    assert len(submitted) == len(set(submitted)) == 4  # every window submitted exactly once
    with duckdb.connect(str(tmp_path / "tikpay.duckdb"), read_only=True) as con:
        for report_type, table in (("TRIPS", "trips"), ("TAPS", "taps")):
            loaded = con.execute(f"SELECT count(*) FROM tikpay_data.{table}").fetchone()[0]
            truth = sandbox.count_rows(report_type, "2025-03-01T00:00:00", "2025-03-03T00:00:00")
            assert loaded == truth
