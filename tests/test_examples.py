"""The scheduling examples: parsed, and checked to run the pipeline as the README does.

GitHub Actions: the workflow's load step is executed with a stand-in ``python`` that
exits with each code, so the quota stop (3) is proven soft and every other failure hard.
Airflow: parsed, and its command's flags accepted by the script. Dagster: its op runs for
real against the sandbox into PostgreSQL, with a stand-in ``dagster`` module (Airflow and
Dagster are not dependencies of this project).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli import SCRIPT, cli_env
from warehouses import PostgresWarehouse

from tikpay_source.sandbox import Fault, Sandbox
from tikpay_source.settings import DATASET_NAME, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_QUOTA_STOP

pytestmark = pytest.mark.e2e  # runs the examples and the script as processes

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
WORKFLOW = EXAMPLES / "github-actions" / "tikpay-daily.yml"
AIRFLOW = EXAMPLES / "airflow" / "tikpay_dag.py"
DAGSTER = EXAMPLES / "dagster" / "tikpay_job.py"
COMMAND = "python pipelines/tikpay.py"


def script_flags(command: str) -> list[str]:
    """The flags after ``python pipelines/tikpay.py`` in a shell script's line that runs it."""
    line = next(line for line in command.splitlines() if COMMAND in line)
    words = shlex.split(line[line.index(COMMAND) :])
    return words[2 : words.index("&&")] if "&&" in words else words[2:]


def assert_the_script_accepts(flags: list[str]) -> None:
    spec = importlib.util.spec_from_file_location("tikpay_script", SCRIPT)
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.parse_args(flags)  # exits (SystemExit 2) on an unknown flag


def workflow() -> dict[Any, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text())
    loaded["on"] = loaded.pop(True, loaded.get("on"))  # YAML 1.1 reads the key `on` as true
    return loaded


def test_the_workflow_runs_daily_with_secrets_from_the_repository() -> None:
    flow = workflow()
    (cron,) = (entry["cron"] for entry in flow["on"]["schedule"])
    assert len(cron.split()) == 5 and "workflow_dispatch" in flow["on"]
    (job,) = flow["jobs"].values()
    for name in ("CLIENT_ID", "CLIENT_SECRET", "API_KEY"):
        assert re.fullmatch(r"\$\{\{ secrets\.\w+ \}\}", job["env"][f"SOURCES__TIKPAY__{name}"])
    assert job["env"]["DESTINATION__POSTGRES__CREDENTIALS"].startswith("${{ secrets.")
    uses = [step.get("uses", "").split("@")[0] for step in job["steps"]]
    assert uses[:2] == ["actions/checkout", "actions/setup-python"]
    assert any('pip install -e ".[postgres]"' in step.get("run", "") for step in job["steps"])


def test_the_workflow_keeps_the_request_ledger_between_runs() -> None:
    (job,) = workflow()["jobs"].values()
    ledger = job["env"]["SOURCES__TIKPAY__LEDGER_DIR"]
    caches = [step for step in job["steps"] if step.get("uses", "").startswith("actions/cache/")]
    assert [c["uses"].split("@")[0] for c in caches] == ["actions/cache/restore", "actions/cache/save"]
    assert all(ledger.endswith(c["with"]["path"]) for c in caches)
    load = next(i for i, step in enumerate(job["steps"]) if COMMAND in step.get("run", ""))
    assert job["steps"].index(caches[0]) < load < job["steps"].index(caches[1])
    assert caches[1]["if"] == "always()"  # a failed run's requests count too


@pytest.mark.parametrize(
    "code, expected",
    [(EXIT_OK, 0), (EXIT_QUOTA_STOP, 0), (EXIT_FAILED, 1), (EXIT_BAD_INPUT, 2), (4, 4)],
)
def test_the_workflow_treats_only_the_quota_stop_as_soft(tmp_path: Path, code: int, expected: int) -> None:
    (job,) = workflow()["jobs"].values()
    step = next(step for step in job["steps"] if COMMAND in step.get("run", ""))
    assert_the_script_accepts(script_flags(step["run"]))
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\nexit {code}\n')
    fake.chmod(0o755)
    result = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        env={"PATH": f"{fake.parent}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == expected
    assert (tmp_path / "args").read_text().startswith("pipelines/tikpay.py")
    assert ("::notice" in result.stdout) == (code == EXIT_QUOTA_STOP)


def test_the_airflow_dag_runs_the_script_and_skips_on_the_quota_stop() -> None:
    tree = ast.parse(AIRFLOW.read_text())
    (operator,) = [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "BashOperator"
    ]
    keywords = {k.arg: k.value for k in operator.keywords}
    assert ast.literal_eval(keywords["skip_on_exit_code"]) == EXIT_QUOTA_STOP
    command = ast.unparse(keywords["bash_command"])
    assert COMMAND in command
    assert_the_script_accepts(script_flags(command.strip("f'\"")))
    dag = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.decorator_list)
    settings = {k.arg: ast.unparse(k.value) for k in dag.decorator_list[0].keywords}
    assert settings["catchup"] == "False" and settings["max_active_runs"] == "1"


# runs the Dagster example's op with a stand-in ``dagster`` module and a logging context
RUN_DAGSTER_OP = textwrap.dedent(
    """
    import runpy, sys, types

    dagster = types.ModuleType("dagster")
    class Failure(Exception):
        def __init__(self, description):
            super().__init__(description)
            self.description = description
    dagster.Failure = Failure
    dagster.op = dagster.job = lambda fn: fn
    dagster.Definitions = dagster.ScheduleDefinition = lambda **kwargs: kwargs
    dagster.OpExecutionContext = object
    sys.modules["dagster"] = dagster

    class Log:
        def info(self, line): print("INFO", line)
        def warning(self, line): print("WARNING", line)
    class Context:
        log = Log()

    example = runpy.run_path(sys.argv[1])
    assert example["defs"]["schedules"][0]["cron_schedule"]
    try:
        example["load_tikpay"](Context())
    except Failure as failure:
        print("FAILED", failure.description)
        sys.exit(1)
    print("SUCCEEDED")
    """
)


@pytest.mark.parametrize("outcome", ["loaded", "quota", "refused"])
def test_the_dagster_op_loads_and_treats_only_the_quota_stop_as_soft(
    sandbox: Sandbox, tmp_path: Path, postgres_dsn: str, outcome: str
) -> None:
    ast.parse(DAGSTER.read_text())
    warehouse = PostgresWarehouse(postgres_dsn, tmp_path)
    warehouse.dataset = DATASET_NAME  # the example's dataset; this test owns it while it runs
    PostgresWarehouse.created.add(DATASET_NAME)
    warehouse.query(f"DROP SCHEMA IF EXISTS {DATASET_NAME} CASCADE; SELECT 1")
    env = cli_env(
        sandbox,
        tmp_path,
        DESTINATION__POSTGRES__CREDENTIALS=postgres_dsn,
        SOURCES__TIKPAY__START_TIME="2025-03-01",
        SOURCES__TIKPAY__END_TIME="2025-03-02",
        SOURCES__TIKPAY__REPORT_TYPES="TRIPS",
        SOURCES__TIKPAY__POLL_INTERVAL="0.1",
        SOURCES__TIKPAY__LEDGER_DIR=str(tmp_path / "ledger"),
    )
    if outcome == "quota":
        sandbox.inject(Fault("quota_exhausted", retry_after=86400, times=None))
    if outcome == "refused":
        env["SOURCES__TIKPAY__CLIENT_SECRET"] = "wrong"
    result = subprocess.run(
        [sys.executable, "-c", RUN_DAGSTER_OP, str(DAGSTER)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    out = result.stdout
    if outcome == "loaded":
        assert result.returncode == 0 and "SUCCEEDED" in out, result.stderr
        truth = sandbox.count_rows("TRIPS", "2025-03-01T00:00:00", "2025-03-02T00:00:00")
        assert f"INFO rows loaded into trips: {truth}" in out
        assert "INFO views: daily_trips_by_route ready" in out
        assert warehouse.query("SELECT count(*) FROM trips") == [(truth,)]
    elif outcome == "quota":
        assert result.returncode == 0 and "SUCCEEDED" in out and "WARNING" in out, out + result.stderr
        assert sandbox.submissions() == []
    else:
        assert result.returncode == 1 and "FAILED" in out and "refused client_id/client_secret" in out
