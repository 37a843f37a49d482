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
from tikpay_source.settings import (
    DATASET_NAME,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_QUOTA_STOP,
)

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


def test_the_workflow_keeps_its_ledger_in_the_warehouse_and_needs_no_cache() -> None:
    (job,) = workflow()["jobs"].values()
    assert job["env"]["SOURCES__TIKPAY__LEDGER"] == "destination"  # shared with every machine on the key
    assert "SOURCES__TIKPAY__LEDGER_DIR" not in job["env"]
    assert not [step for step in job["steps"] if step.get("uses", "").startswith("actions/cache")]


@pytest.mark.parametrize(
    "code, expected",
    [(EXIT_OK, 0), (EXIT_QUOTA_STOP, 0), (EXIT_LOCKED, 0), (EXIT_FAILED, 1), (EXIT_BAD_INPUT, 2), (4, 4)],
)
def test_the_workflow_treats_only_the_quota_stop_and_a_held_lock_as_soft(
    tmp_path: Path, code: int, expected: int
) -> None:
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
    assert ("::notice" in result.stdout) == (code in (EXIT_QUOTA_STOP, EXIT_LOCKED))


def test_the_airflow_dags_share_one_ledger_and_skip_on_the_quota_stop_and_a_held_lock() -> None:
    tree = ast.parse(AIRFLOW.read_text())
    constants = {
        target.id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(target := node.targets[0], ast.Name)
        if target.id.isupper() and not isinstance(node.value, ast.Call)
    }
    assert constants["SHARED_LEDGER"] == {"SOURCES__TIKPAY__LEDGER": "destination"}
    assert constants["SOFT_EXIT_CODES"] == [EXIT_QUOTA_STOP, EXIT_LOCKED]
    (operator,) = [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "BashOperator"
    ]
    keywords = {k.arg: ast.unparse(k.value) for k in operator.keywords}
    assert keywords["skip_on_exit_code"] == "SOFT_EXIT_CODES" and keywords["append_env"] == "True"
    assert keywords["env"].startswith("{**SHARED_LEDGER")
    template = keywords["bash_command"]
    assert COMMAND in template and "{flags}" in template
    loads = [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "load_task"
    ]
    dags = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.decorator_list]
    assert len(loads) == len(dags) == 2  # two DAGs, each one load of the same pipeline
    for load in loads:
        command = template.replace("{flags}", ast.literal_eval(load.args[0])).replace("{TIKPAY_DIR}", ".")
        assert_the_script_accepts(script_flags(command.removesuffix(".strip()").strip("f'\"")))
    for dag in dags:
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


def start_dagster_op(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", RUN_DAGSTER_OP, str(DAGSTER)],
        env=env | {"HOME": str(cwd), "DLT_DATA_DIR": str(cwd / "dlt")},  # a worker of its own
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("outcome", ["two workers", "quota", "refused"])
def test_the_dagster_op_loads_and_treats_only_the_quota_stop_and_a_held_lock_as_soft(
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
    )
    if outcome == "quota":
        sandbox.inject(Fault("quota_exhausted", retry_after=86400, times=None))
    if outcome == "refused":
        env["SOURCES__TIKPAY__CLIENT_SECRET"] = "wrong"
    workers = 2 if outcome == "two workers" else 1  # started at the same moment, one key, one warehouse
    ops = [start_dagster_op(env, tmp_path / f"worker{n}") for n in range(workers)]
    results = [(*op.communicate(timeout=120), op.returncode) for op in ops]
    results = [(code, out, err) for out, err, code in results]

    (code, out, err), *_ = results
    if outcome == "two workers":
        truth = sandbox.count_rows("TRIPS", "2025-03-01T00:00:00", "2025-03-02T00:00:00")
        for code, out, err in results:
            assert code == 0 and "SUCCEEDED" in out, out + err
        loaded = [out for _, out, _ in results if f"INFO rows loaded into trips: {truth}" in out]
        assert len(loaded) == 1 and "INFO views: daily_trips_by_route ready" in loaded[0]
        assert warehouse.query("SELECT count(*) FROM trips") == [(truth,)]  # once, not twice
        assert len(sandbox.submissions()) == 1
        counted = warehouse.query("SELECT count(*) FROM _tikpay_ledger WHERE kind IN ('submit', 'list')")
        assert counted == [(sandbox.quota_used(),)]  # both workers counted in the warehouse
    elif outcome == "quota":
        assert code == 0 and "SUCCEEDED" in out and "WARNING" in out, out + err
        assert sandbox.submissions() == []
    else:
        assert code == 1 and "FAILED" in out and "refused client_id/client_secret" in out
