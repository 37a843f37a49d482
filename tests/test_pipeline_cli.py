"""``python pipelines/tikpay.py`` as users and schedulers run it: flags, exit codes, one-line errors, crashes."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from cli import cli_env, run_cli

from tikpay_source.sandbox import Sandbox
from tikpay_source.settings import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK


def test_help_lists_the_common_flags(tmp_path: Path) -> None:
    result = run_cli(["--help"], cli_env(None, tmp_path), tmp_path)
    assert result.returncode == 0
    for flag in (
        "--report-types",
        "--start",
        "--end",
        "--window",
        "--file-type",
        "--destination",
        "--sandbox",
    ):
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
        loaded = con.execute(
            "SELECT count(*) FROM tikpay_data.report_jobs WHERE load_status = 'loaded'"
        ).fetchone()
    assert loaded == (8,)
    again = run_cli(["--sandbox"], cli_env(None, tmp_path), tmp_path)
    assert again.returncode == EXIT_OK and "windows loaded: 0" in again.stdout


@pytest.mark.parametrize(
    "args, names",
    [
        (["--poll-interval", "nan"], ["poll_interval", "finite"]),
        (["--max-wait", "inf"], ["max_wait", "finite"]),
        (["--poll-interval", "0"], ["poll_interval", "greater than zero"]),
        (["--start", "0001-01-01"], ["start_time", "2000 to 2099"]),
    ],
)
def test_numbers_and_dates_out_of_range_are_one_line(
    sandbox: Sandbox, tmp_path: Path, args: list[str], names: list[str]
) -> None:
    result = run_cli(args, cli_env(sandbox, tmp_path), tmp_path)
    assert result.returncode == EXIT_BAD_INPUT and "Traceback" not in result.stderr
    assert all(name in result.stderr.strip().splitlines()[-1] for name in names), result.stderr
    assert sandbox.api_requests == []
