"""A scheduler's bad month: 30 runs of the script under random faults, kills and clock jumps, then calm.

Every run is ``python pipelines/tikpay.py`` as a process of its own, sharing one DuckDB file,
one state folder and one request ledger with the others. Before each run the sandbox is
given a few faults drawn from every kind issue "Faults" names (500 and 503 answers, dropped
and cut answers, a 429 while under quota, FAILED jobs, truncated, expired and slow
downloads); a third of the runs are stopped by SIGKILL, SIGINT or SIGTERM at a random
moment, and between runs the clock may jump hours or days (the sandbox's, and the
ledger's times with it). Then calm runs, a day apart, until everything is loaded.

Checked at the end: every row exactly once, the API never had to refuse a request for
quota (no more than 20 in any 24 hours), no window submitted while a job of it was still
live, no secret in any output, no traceback, only documented exit codes.

One seed runs with the suite; ``pytest -m slow tests/test_soak.py`` runs the others.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from cli import SCRIPT, catches, cli_env
from harness import daily
from warehouses import DuckDBWarehouse

from tikpay_source.sandbox import DEMO_API_KEY, DEMO_CLIENT_SECRET, Fault, Sandbox
from tikpay_source.settings import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_QUOTA_STOP,
    EXIT_WINDOWS_FAILED,
    REPORT_TABLES,
)

pytestmark = pytest.mark.e2e
RUNS = 30
HOUR, DAY = 3600, 86_400
TYPES = ("TRIPS", "TAPS")
START, END = "2025-03-01", "2025-03-08"  # 7 days of 2 types: 14 windows, more than a day of quota
ARGS = ["--report-types", ",".join(TYPES), "--start", START, "--end", END]
ARGS += ["--poll-interval", "0.05", "--max-wait", "3", "--quiet"]
DOCUMENTED_EXITS = {EXIT_OK, EXIT_FAILED, EXIT_QUOTA_STOP, EXIT_WINDOWS_FAILED, EXIT_INTERRUPTED}
SIGNALS = (signal.SIGKILL, signal.SIGINT, signal.SIGTERM)

# what can go wrong at the API and its download host, each drawn as often as the others
FAULTS: list[Callable[[random.Random], Fault]] = [
    lambda r: Fault("status", endpoint=r.choice(["submit", "list"]), status=r.choice([500, 503])),
    lambda r: Fault("status", endpoint="token", status=503),
    lambda r: Fault("status", endpoint="download", status=r.choice([500, 503])),
    lambda r: Fault("drop", endpoint="download", after_bytes=r.randrange(200)),
    lambda r: Fault("cut_answer", endpoint=r.choice(["submit", "list"]), after_bytes=r.randrange(40)),
    lambda r: Fault("quota_exhausted", retry_after=r.choice([1, 30 * HOUR])),  # a 429 under quota
    lambda r: Fault("job_failed", report_type=r.choice(TYPES)),
    lambda r: Fault("truncate", endpoint="download"),
    lambda r: Fault("slow", endpoint="download", delay=r.uniform(0.1, 0.6)),
    lambda r: Fault("expire_links"),
    lambda r: Fault("expire_token"),
]


def shift_ledger(ledger_dir: Path, seconds: float) -> None:
    """Time passes for the ledger as for the sandbox: its entries move ``seconds`` into the past."""
    for path in ledger_dir.glob("*.jsonl"):
        lines = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line torn by a kill
            lines.append(
                json.dumps({k: v - seconds if k in ("at", "until") else v for k, v in entry.items()})
            )
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def one_run(
    env: dict[str, str], cwd: Path, kill: tuple[float, signal.Signals] | None = None, *extra: str
) -> tuple[int, str]:
    """The script once, its exit code and output; with ``kill``, that signal that many seconds after the start."""
    with (cwd / "out").open("w+") as out:
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT), *ARGS, *extra], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as from a terminal
        )  # fmt: skip
        try:
            if kill is not None:
                started = time.monotonic()
                while process.poll() is None and not catches(process.pid, signal.SIGTERM):
                    time.sleep(0.005)  # until the script handles signals: before, the OS would end it
                try:
                    process.wait(timeout=max(0.0, kill[0] - (time.monotonic() - started)))
                except subprocess.TimeoutExpired:
                    process.send_signal(kill[1])
            code = process.wait(timeout=120)
        finally:
            process.kill()
        out.seek(0)
        return code, out.read()


def live_at(job: dict[str, str], moment: str) -> bool:
    """Whether ``job`` was live (in progress, or complete and not expired) at ``moment`` (local time)."""
    if job["createdAt"] > moment or job["expiresAt"] <= moment:
        return False
    return job["status"] not in ("FAILED", "NO_DATA") or job.get("completedAt", moment) > moment


def submitted_while_live(jobs: list[dict[str, str]]) -> list[str]:
    """Windows submitted again while an earlier job of theirs was still live."""
    per_window: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for job in sorted(jobs, key=lambda j: j["createdAt"]):
        per_window[(job["reportType"], job["startTime"])].append(job)
    return [
        f"{window} at {later['createdAt']}"
        for window, window_jobs in per_window.items()
        for i, later in enumerate(window_jobs)
        if any(live_at(earlier, later["createdAt"]) for earlier in window_jobs[:i])
    ]


@pytest.mark.parametrize(
    "seed", [7, pytest.param(11, marks=pytest.mark.slow), pytest.param(23, marks=pytest.mark.slow)]
)
def test_random_faults_kills_and_clock_jumps_then_calm_runs_load_everything_exactly_once(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    sandbox = make_sandbox(rows_per_hour={"TRIPS": 30, "TAPS": 30}, complete_after_list_calls=1)
    ledger_dir = tmp_path / "ledger"
    database = tmp_path / "tikpay.duckdb"
    env = cli_env(
        sandbox, tmp_path, SOURCES__TIKPAY__LEDGER_DIR=str(ledger_dir),
        DESTINATION__DUCKDB__CREDENTIALS=str(database), SOURCES__TIKPAY__MAX_RETRY_WAIT="2",
    )  # fmt: skip
    outputs: list[str] = []
    exits: list[int] = []

    def time_passes(seconds: float) -> None:
        sandbox.clock.advance(seconds)
        shift_ledger(ledger_dir, seconds)

    for _ in range(RUNS):
        sandbox.clear_faults()
        for make in rng.sample(FAULTS, rng.randint(1, 3)):
            sandbox.inject(make(rng))
        kill = (rng.uniform(0.1, 2.5), rng.choice(SIGNALS)) if rng.random() < 0.35 else None
        code, output = one_run(env, tmp_path, kill)
        exits.append(code)
        outputs.append(output)
        if rng.random() < 0.35:
            time_passes(rng.choice([HOUR, 6 * HOUR, DAY, 2 * DAY, 8 * DAY]))  # 8 days: jobs expire

    sandbox.clear_faults()
    for calm in range(8):
        time_passes(DAY)
        # a window that failed three times under the faults gets a fresh set of attempts
        code, output = one_run(env, tmp_path, None, *(["--retry-failed"] if calm == 0 else []))
        exits.append(code)
        outputs.append(output)
        if code == EXIT_OK and "nothing new to load" in output:
            break

    warehouse = DuckDBWarehouse(database)
    for report_type in TYPES:
        window = warehouse.window_text("_tikpay_window_start")
        table = REPORT_TABLES[report_type]
        loaded = dict(warehouse.query(f"SELECT {window}, count(*) FROM {table} GROUP BY 1"))
        assert loaded == {
            start: sandbox.count_rows(report_type, start, end) for start, end in daily(START, 7)
        }
    assert sandbox.quota_refused(DEMO_API_KEY) == 0  # never more than 20 requests in 24 hours
    assert submitted_while_live(sandbox.jobs()) == []
    tokens = {r["headers"].get("authorization", "").removeprefix("Bearer ") for r in sandbox.api_requests}
    links = {j["downloadUrl"].split("?")[1] for j in sandbox.jobs() if j.get("downloadUrl")}
    everything = "\n".join(outputs)
    for secret in (DEMO_CLIENT_SECRET, DEMO_API_KEY, *(tokens - {""}), *links):
        assert secret not in everything
    assert "Traceback" not in everything
    assert set(exits) <= DOCUMENTED_EXITS | {-signal.SIGKILL}, exits
    assert exits[-1] == EXIT_OK
