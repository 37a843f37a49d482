"""SIGKILL the pipeline at several points, run it again: no window missing, none doubled, no job submitted twice."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest
from cli import SCRIPT, cli_env, run_cli

from tikpay_source.sandbox import Fault, Sandbox
from tikpay_source.settings import EXIT_OK

MakeSandbox = Callable[..., Sandbox]
ARGS = ["--report-types", "TRIPS,TAPS", "--start", "2025-03-01", "--end", "2025-03-03", "--max-wait", "60"]
WINDOW_RANGE = ("2025-03-01T00:00:00", "2025-03-03T00:00:00")


def pending_package(tmp: Path) -> bool:
    """dlt has extracted (state saved locally) but not finished loading: a package waits on disk."""
    load_dir = tmp / "dlt" / "pipelines" / "tikpay" / "load"
    return any(any((load_dir / stage).glob("*")) for stage in ("new", "normalized"))


def a_link_was_handed_out(sandbox: Sandbox) -> bool:
    return any(job["status"] == "COMPLETE" for job in sandbox.jobs())


@dataclass(frozen=True)
class KillPoint:
    """Where to kill the first run: the sandbox it needs, and the moment to pull the plug."""

    name: str
    moment: Callable[[Sandbox, Path], bool]
    settings: dict[str, Any] = field(default_factory=dict)
    fault: Fault | None = None
    settle: float = 0.0  # seconds to let the process get into the state after the moment is seen


KILL_POINTS = [
    KillPoint("just after the first submission", lambda sb, _: len(sb.submissions()) >= 1),
    KillPoint("after every submission, while waiting", lambda sb, _: len(sb.submissions()) >= 4),
    KillPoint(
        "mid-download",
        lambda sb, _: a_link_was_handed_out(sb),
        fault=Fault("slow", endpoint="download", delay=15),
        settle=0.5,
    ),
    KillPoint(
        "mid-load (extracted, state saved locally, load not finished)",
        lambda _, tmp: pending_package(tmp),
        settings={"rows_per_hour": {"TRIPS": 3000, "TAPS": 3000}, "complete_after_list_calls": 0},
    ),
]


@pytest.mark.parametrize("point", KILL_POINTS, ids=lambda p: p.name)
def test_a_killed_run_is_resumed_by_the_next_without_loss_doubling_or_resubmission(
    make_sandbox: MakeSandbox, tmp_path: Path, point: KillPoint
) -> None:
    sandbox = make_sandbox(**point.settings)
    if point.fault:
        sandbox.inject(point.fault)
    env = cli_env(sandbox, tmp_path)
    doomed = subprocess.Popen(
        [sys.executable, str(SCRIPT), *ARGS, "--poll-interval", "30" if not point.settings else "0.05"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while not point.moment(sandbox, tmp_path):
            assert doomed.poll() is None, "the run finished before the kill point was reached"
            assert time.monotonic() < deadline, "the kill point was never reached"
            time.sleep(0.002)
        time.sleep(point.settle)
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    sandbox.clear_faults()

    resumed = run_cli([*ARGS, "--poll-interval", "0.1"], env, tmp_path)

    assert resumed.returncode == EXIT_OK, resumed.stdout + resumed.stderr
    submitted = [(s["reportType"], s["startTime"]) for s in sandbox.submissions()]
    assert len(submitted) == len(set(submitted)) == 4  # every window submitted exactly once
    with duckdb.connect(str(tmp_path / "tikpay.duckdb"), read_only=True) as con:
        for report_type, table in (("TRIPS", "trips"), ("TAPS", "taps")):
            loaded = con.execute(f"SELECT count(*) FROM tikpay_data.{table}").fetchone()[0]
            assert loaded == sandbox.count_rows(report_type, *WINDOW_RANGE)
        jobs = con.execute("SELECT count(*), count(DISTINCT job_id) FROM tikpay_data.report_jobs").fetchone()
    assert jobs == (4, 4)
