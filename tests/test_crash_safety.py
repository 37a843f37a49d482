"""SIGKILL the pipeline at several points, or damage a file while it is read, then run it again.

Whatever happened, the next run leaves no window missing, none doubled, and no job submitted twice.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cli import cli_env, into_warehouse, kill_when, run_cli
from dlt.pipeline.exceptions import PipelineStepFailed
from harness import Harness
from warehouses import Warehouse

from tikpay_source import ReadInterrupted, tikpay
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
    poll: str = "30"  # the doomed run's poll_interval: long enough that its jobs wait for the kill


KILL_POINTS = [
    KillPoint("just after the first submission", lambda sb, _: len(sb.submissions()) >= 1),
    KillPoint("after every submission, while waiting", lambda sb, _: len(sb.submissions()) >= 4),
    KillPoint(
        "mid-download",
        lambda sb, _: a_link_was_handed_out(sb),
        fault=Fault("slow", endpoint="download", delay=15),
        settle=0.5,
        poll="0.2",  # the slow download, not the poll, holds the run at the kill point
    ),
    KillPoint(
        "mid-load (extracted, state saved locally, load not finished)",
        lambda _, tmp: pending_package(tmp),
        settings={"rows_per_hour": {"TRIPS": 3000, "TAPS": 3000}, "complete_after_list_calls": 0},
    ),
]


@pytest.mark.warehouses("duckdb", "postgres")  # PostgreSQL: the package killed mid-load holds a CSV file
@pytest.mark.parametrize("point", KILL_POINTS, ids=lambda p: p.name)
def test_a_killed_run_is_resumed_by_the_next_without_loss_doubling_or_resubmission(
    make_sandbox: MakeSandbox, tmp_path: Path, point: KillPoint, warehouse: Warehouse
) -> None:
    sandbox = make_sandbox(**point.settings)
    if point.fault:
        sandbox.inject(point.fault)
    target, settings = into_warehouse(warehouse)
    env = cli_env(sandbox, tmp_path, **settings)
    args = [*ARGS, *target]
    poll = point.poll if not point.settings else "0.05"
    kill_when(
        [*args, "--poll-interval", poll], env, tmp_path, lambda: point.moment(sandbox, tmp_path), point.settle
    )
    sandbox.clear_faults()

    resumed = run_cli([*args, "--poll-interval", "0.1"], env, tmp_path)

    assert resumed.returncode == EXIT_OK, resumed.stdout + resumed.stderr
    submitted = [(s["reportType"], s["startTime"]) for s in sandbox.submissions()]
    assert len(submitted) == len(set(submitted)) == 4  # every window submitted exactly once
    for report_type, table in (("TRIPS", "trips"), ("TAPS", "taps")):
        assert warehouse.query(f"SELECT count(*) FROM {table}") == [
            (sandbox.count_rows(report_type, *WINDOW_RANGE),)
        ]
    assert warehouse.query("SELECT count(*), count(DISTINCT job_id) FROM report_jobs") == [(4, 4)]


ONE_DAY = {"report_types": ["TRIPS"], "start_time": "2025-03-03", "end_time": "2025-03-04", "window": "P1D"}


def source_that_damages_its_file(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Harness, Any, list[int]]:
    """A harness and a source whose downloaded file is cut short on disk once its first report item reached dlt.

    A full disk or another process could do this. The list receives the file's size before the cut.
    """
    sandbox = make_sandbox(rows_per_hour={"TRIPS": 16_000}, complete_after_list_calls=0)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the run downloads its files
    harness = Harness(sandbox, tmp_path)
    damaged: list[int] = []

    def cut_the_file_short(item: Any) -> Any:
        if not damaged and not isinstance(item, dict):  # the first batch of report rows, or their file
            (path,) = scratch.glob("tikpay-*/tikpay-*.csv")
            damaged.append(path.stat().st_size)
            path.write_bytes(path.read_bytes()[: damaged[0] // 3])
        return item

    source = tikpay(**harness.settings(**ONE_DAY))
    source.trips.add_map(cut_the_file_short)
    return harness, source, damaged


@pytest.mark.warehouses("filesystem")  # a destination that gets Arrow batches while the file is read
def test_a_file_damaged_while_it_is_read_fails_the_whole_run_and_the_next_run_loads_it_once(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows already handed to dlt cannot be taken back: the extract fails and nothing of the run loads.

    The file is cut short after its first batch reached dlt, so the read fails half way, past the row check.
    """
    harness, source, damaged = source_that_damages_its_file(make_sandbox, tmp_path, monkeypatch)
    with pytest.raises(PipelineStepFailed) as failed:
        harness.pipeline().run(source)
    assert damaged and damaged[0] > 64_000_000  # larger than what DuckDB reads ahead
    cause: BaseException | None = failed.value
    while cause is not None and not isinstance(cause, ReadInterrupted):
        cause = cause.__cause__ or cause.__context__
    assert isinstance(cause, ReadInterrupted), failed.value
    assert re.search(r"file failed after [1-9][0-9]* of its rows were handed to dlt", str(cause))
    assert "nothing of this run is loaded" in str(cause)
    assert not harness.table_exists("trips") and not harness.table_exists("report_jobs")

    harness.run(**ONE_DAY)
    window = ("2025-03-03T00:00:00", "2025-03-04T00:00:00")
    assert harness.rows_per_window("trips") == harness.truth_per_window("TRIPS", [window])
    assert harness.submissions_for("TRIPS") == [window]  # the second run adopted the job


def test_a_file_written_whole_for_dlt_before_it_sees_a_row_loads_whole_whatever_happens_after(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into DuckDB the checked report becomes one Parquet file before dlt gets it: the same damage changes nothing."""
    harness, source, damaged = source_that_damages_its_file(make_sandbox, tmp_path, monkeypatch)
    harness.pipeline().run(source)

    assert damaged and damaged[0] > 64_000_000
    window = ("2025-03-03T00:00:00", "2025-03-04T00:00:00")
    assert harness.rows_per_window("trips") == harness.truth_per_window("TRIPS", [window])
