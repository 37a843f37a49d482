"""``python pipelines/tikpay.py`` as users and schedulers run it: flags, exit codes, one-line errors, crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dlt
import duckdb
import pytest
from cli import SCRIPT, catches, cli_env, one_day_args, run_cli, wait_for
from harness import Harness

from tikpay_source.sandbox import Sandbox
from tikpay_source.settings import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, REPORT_TABLES

pytestmark = pytest.mark.e2e  # runs the script as a process

INTERRUPTED = "interrupted: nothing of this run was committed; the next run resumes safely"


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
        (
            ["--sandbox", "--timezone", "Mars/Olympus_Mons"],
            ["'Mars/Olympus_Mons'", "IANA"],
        ),  # before it starts
        (["--file-type", "json"], ["'json'", "csv", "xml"]),
        (["--table-format", "iceberg"], ["table_format", "'iceberg'", "delta, parquet"]),
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
    first, state, *_ = out.splitlines()
    assert (
        first
        == f"pipeline tikpay_sandbox: duckdb dataset tikpay_data, in {tmp_path / 'tikpay_sandbox.duckdb'}"
    )
    assert state.startswith(f"state in {tmp_path / 'dlt'}") and state.endswith(
        "request ledger this run's own (the sandbox's)"
    )
    assert any(line.startswith("took ") and line.endswith(" s") for line in out.splitlines())
    assert out.splitlines()[-1].startswith("all caught up: the next window (")
    with duckdb.connect(str(tmp_path / "tikpay_sandbox.duckdb"), read_only=True) as con:
        loaded = con.execute(
            "SELECT count(*) FROM tikpay_data.report_jobs WHERE load_status = 'loaded'"
        ).fetchone()
        held = {
            table: con.execute(f"SELECT count(*) FROM tikpay_data.{table}").fetchone()[0]
            for table in REPORT_TABLES.values()
        }
    assert loaded == (8,)
    # the rows of this run and in all: the first run loaded everything there is
    assert all(f"rows loaded into {table}: {n} ({n} in all)" in out for table, n in held.items()), out
    again = run_cli(["--sandbox"], cli_env(None, tmp_path), tmp_path)
    assert again.returncode == EXIT_OK and "windows loaded: 0" in again.stdout
    assert all(f"rows loaded into {table}: 0 ({n} in all)" in again.stdout for table, n in held.items())


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


def test_a_destination_typo_exits_2_naming_the_choices(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run_cli(["--destination", "duckbd"], cli_env(sandbox, tmp_path), tmp_path)

    assert result.returncode == EXIT_BAD_INPUT and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: destination 'duckbd' is not a dlt destination; choose one of ")
    assert all(name in line for name in ("duckdb", "postgres", "filesystem", "bigquery", "snowflake"))
    assert sandbox.api_requests == []


def test_a_malformed_config_file_is_named_with_its_line_and_reason(sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text('[sources.tikpay]\nwindow = "P1D\nlag = "PT1H"\n')
    result = run_cli([], cli_env(sandbox, tmp_path), tmp_path)

    assert result.returncode == EXIT_BAD_INPUT and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and ".dlt/config.toml is not valid TOML: " in line
    assert "line 2" in line and "not allowed in strings" in line  # the file, the line and tomlkit's reason
    assert sandbox.api_requests == []


def test_dlt_settings_choose_the_dataset_and_destination(sandbox: Sandbox, tmp_path: Path) -> None:
    """``dataset_name`` and ``destination_type`` are dlt's own settings; a flag still wins over them."""
    args = one_day_args("TRIPS")
    env = cli_env(sandbox, tmp_path, DATASET_NAME="ops_reports")
    from_config = run_cli(args, env, tmp_path)
    assert from_config.returncode == EXIT_OK, from_config.stderr
    assert "pipeline tikpay: duckdb dataset ops_reports" in from_config.stdout

    files = tmp_path / "lake"
    env |= {"DESTINATION_TYPE": "filesystem", "DESTINATION__FILESYSTEM__BUCKET_URL": str(files)}
    on_files = run_cli([*args, "--dataset", "lake_reports"], env, tmp_path)
    assert on_files.returncode == EXIT_OK, on_files.stderr
    assert "pipeline tikpay: filesystem dataset lake_reports" in on_files.stdout
    assert (files / "lake_reports" / "trips" / "_delta_log").is_dir()  # a Delta table, the default there


def test_every_setting_with_a_flag_is_in_help_and_the_readme_table_is_the_declared_one(
    tmp_path: Path,
) -> None:
    from tikpay_source.config import OPTIONS, settings_table

    result = run_cli(["--help"], cli_env(None, tmp_path), tmp_path)
    assert all(option.flag in result.stdout for option in OPTIONS if option.flag)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert settings_table() in readme


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_exits_130_with_one_line_and_the_next_run_adopts_its_jobs(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path, sent: signal.Signals
) -> None:
    # jobs still running after the first run's list calls, so the signal finds it waiting between polls
    sandbox = make_sandbox(complete_after_list_calls=3)
    env = cli_env(sandbox, tmp_path)
    args = ["--report-types", "TRIPS", "--start", "2025-03-01", "--end", "2025-03-03"]
    running = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args, "--poll-interval", "30"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a shell's background job (a CI step, say) hands its children SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        wait_for(lambda: len(sandbox.submissions()) == 2)
        time.sleep(0.3)  # into the wait between polls
        running.send_signal(sent)
        out, err = running.communicate(timeout=60)
    finally:
        running.kill()

    assert running.returncode == EXIT_INTERRUPTED, out + err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == INTERRUPTED
    resumed = run_cli([*args, "--poll-interval", "0.1"], env, tmp_path)
    assert resumed.returncode == EXIT_OK, resumed.stderr
    assert len(sandbox.submissions()) == 2 and "2 jobs adopted" in resumed.stdout


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_while_the_script_starts_is_one_line_and_exit_130(
    tmp_path: Path, sent: signal.Signals
) -> None:
    """The script catches SIGTERM (and Ctrl-C) before the imports that take most of a second: a signal
    there is one line, not a traceback from deep inside an import, nor a silent death by signal."""
    starting = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--plan"],
        env=cli_env(None, tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as from a terminal
    )
    try:
        wait_for(lambda: catches(starting.pid, signal.SIGTERM), timeout=30)
        starting.send_signal(sent)
        out, err = starting.communicate(timeout=60)
    finally:
        starting.kill()

    assert starting.returncode == EXIT_INTERRUPTED, out + err
    (line,) = err.strip().splitlines()
    assert line == "interrupted before the run began: nothing was done"


def test_a_destination_without_credentials_is_one_line_naming_where_they_go(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Not dlt's page of lookups: the variable and the file to give them in, exit 2, before any request."""
    result = run_cli(
        ["--destination", "postgres", "--quiet", *one_day_args("TRIPS")], cli_env(sandbox, tmp_path), tmp_path
    )

    assert result.returncode == EXIT_BAD_INPUT and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()  # --quiet: nothing but the error
    assert line.startswith(
        "error: destination postgres needs credentials: set DESTINATION__POSTGRES__CREDENTIALS"
    )
    assert "[destination.postgres] credentials in .dlt/secrets.toml" in line
    assert sandbox.api_requests == []


def test_quiet_keeps_the_sandbox_quiet_too(tmp_path: Path) -> None:
    result = run_cli(["--sandbox", "--quiet", "--report-types", "TRIPS"], cli_env(None, tmp_path), tmp_path)

    assert result.returncode == EXIT_OK, result.stderr
    assert "sandbox:" not in result.stderr and "tikpay:" not in result.stderr


def test_the_sandbox_keeps_the_users_settings_and_says_what_it_sets(tmp_path: Path) -> None:
    """--sandbox owns its URLs, credentials and ledger; the user's other settings stand, checked as ever."""
    bad = run_cli(["--sandbox"], cli_env(None, tmp_path, SOURCES__TIKPAY__MAX_WAIT="soon"), tmp_path)
    assert bad.returncode == EXIT_BAD_INPUT and "max_wait 'soon'" in bad.stderr.strip().splitlines()[-1]

    env = cli_env(
        None, tmp_path, SOURCES__TIKPAY__START_TIME="2025-03-01", SOURCES__TIKPAY__END_TIME="2025-03-02"
    )
    ran = run_cli(["--sandbox", "--report-types", "TRIPS"], env, tmp_path)
    assert ran.returncode == EXIT_OK, ran.stderr
    (line,) = [line for line in ran.stderr.splitlines() if line.startswith("sandbox: ")]
    assert line.endswith(
        "it sets base_url, token_url, the credentials and a fresh local ledger; for a quick trial also "
        "poll_interval, max_wait"
    )  # not start_time: the user's 2025-03-01 is the run's
    assert "submitted TRIPS 2025-03-01T00:00:00 to 2025-03-02T00:00:00" in ran.stderr


def test_a_misspelt_setting_in_the_environment_is_a_warning_naming_the_closest(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    env = cli_env(sandbox, tmp_path, SOURCES__TIKPAY__REPORT_TYPE="TRIPS")
    result = run_cli(["--plan", "--start", "2025-03-01", "--end", "2025-03-02"], env, tmp_path)

    assert result.returncode == EXIT_OK, result.stderr
    assert (
        "tikpay: [sources.tikpay] report_type is not a setting and is ignored; did you mean report_types?"
        in (result.stderr)
    )


def test_reload_loads_the_chosen_types_again_from_an_earlier_start(sandbox: Sandbox, tmp_path: Path) -> None:
    """--start earlier than the state is named in the plan with the way to do it; --reload does it, TAPS untouched."""
    env = cli_env(sandbox, tmp_path)
    first = [
        "--report-types",
        "TAPS,TRIPS",
        "--start",
        "2025-03-02",
        "--end",
        "2025-03-03",
        "--poll-interval",
        "0.1",
    ]
    assert run_cli(first, env, tmp_path).returncode == EXIT_OK

    plan = run_cli(
        ["--plan", "--report-types", "TRIPS", "--start", "2025-03-01", "--end", "2025-03-03"], env, tmp_path
    )
    assert "run once with --reload --report-types TRIPS --start 2025-03-01" in plan.stdout
    refused = run_cli(["--reload", "--start", "2025-03-01"], env, tmp_path)
    assert refused.returncode == EXIT_BAD_INPUT and "--reload needs --report-types" in refused.stderr

    again = ["--reload", "--report-types", "TRIPS", "--start", "2025-03-01", "--end", "2025-03-03",
             "--poll-interval", "0.1"]  # fmt: skip
    reloaded = run_cli(again, env, tmp_path)
    assert reloaded.returncode == EXIT_OK, reloaded.stderr
    with duckdb.connect(str(tmp_path / "tikpay.duckdb"), read_only=True) as con:
        trips = con.execute("SELECT count(*) FROM tikpay_data.trips").fetchone()
        taps = con.execute("SELECT count(*) FROM tikpay_data.taps").fetchone()
    assert trips == (sandbox.count_rows("TRIPS", "2025-03-01T00:00:00", "2025-03-03T00:00:00"),)
    assert taps == (sandbox.count_rows("TAPS", "2025-03-02T00:00:00", "2025-03-03T00:00:00"),)


BLOCK_PSYCOPG2 = """
import sys
class _NoPsycopg2:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "psycopg2":
            raise ModuleNotFoundError("No module named 'psycopg2'", name="psycopg2")
sys.meta_path.insert(0, _NoPsycopg2())
"""


def test_a_destination_whose_driver_is_missing_names_the_extra(sandbox: Sandbox, tmp_path: Path) -> None:
    """As on a machine where the postgres extra was never installed: one line naming it, exit 2, no request."""
    blocker = tmp_path / "no_psycopg2"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_PSYCOPG2)
    env = cli_env(sandbox, tmp_path, DESTINATION__POSTGRES__CREDENTIALS="postgresql://u:p@127.0.0.1:9/none")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(blocker), env.get("PYTHONPATH")]))
    result = run_cli(["--destination", "postgres", "--quiet", *one_day_args("TRIPS")], env, tmp_path)

    assert result.returncode == EXIT_BAD_INPUT and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        'error: psycopg2 is not installed: pip install -e ".[postgres]" (the postgres extra)'
    ]
    assert sandbox.api_requests == []


def test_the_summary_counts_the_windows_of_a_pending_load_it_finished(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A machine died after its run's extract: the next run loads that package first and counts its windows."""
    two_days = {"report_types": ["TRIPS"], "start_time": "2025-03-01", "end_time": "2025-03-03"}
    died = dlt.pipeline(
        "tikpay",
        pipelines_dir=str(tmp_path / "dlt" / "pipelines"),  # where the script's pipeline lives
        destination=dlt.destinations.duckdb(str(tmp_path / "tikpay.duckdb")),
        dataset_name="tikpay_data",
    )
    died.extract(Harness(sandbox, tmp_path).source(**two_days))
    died.normalize()
    assert died.has_pending_data

    args = ["--report-types", "TRIPS", "--start", "2025-03-01", "--end", "2025-03-03"]
    # dlt puts a default DuckDB file where the pipeline was first made (this test's process): say where
    env = cli_env(sandbox, tmp_path, DESTINATION__DUCKDB__CREDENTIALS=str(tmp_path / "tikpay.duckdb"))
    result = run_cli(args, env, tmp_path)

    assert result.returncode == EXIT_OK, result.stderr
    assert "finishing the load left pending by an interrupted run" in result.stderr
    assert "windows loaded: 2" in result.stdout, result.stdout
    rows = sandbox.count_rows("TRIPS", "2025-03-01T00:00:00", "2025-03-03T00:00:00")
    assert f"rows loaded into trips: {rows}" in result.stdout, result.stdout
    with duckdb.connect(str(tmp_path / "tikpay.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM tikpay_data.trips").fetchone() == (rows,)


def test_json_prints_the_summary_as_one_object_for_an_orchestrator(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run_cli(["--json", *one_day_args("TRIPS")], cli_env(sandbox, tmp_path), tmp_path)

    assert result.returncode == EXIT_OK, result.stderr
    (line,) = result.stdout.splitlines()
    summary = json.loads(line)
    assert summary["exit_code"] == EXIT_OK and summary["windows_loaded"] == 1 and summary["submitted"] == 1
    rows = sandbox.count_rows("TRIPS", "2025-03-01T00:00:00", "2025-03-02T00:00:00")
    assert summary["rows"] == {"trips": rows}
    assert (summary["pipeline"], summary["destination"], summary["dataset"]) == (
        "tikpay",
        "duckdb",
        "tikpay_data",
    )
    assert summary["ledger"].endswith(".jsonl") and summary["upcoming"] is None  # end_time reached
