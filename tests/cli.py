"""Running ``python pipelines/tikpay.py`` as a separate process, the way users and schedulers do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from warehouses import DuckDBWarehouse, PostgresWarehouse, S3Warehouse, Warehouse

from tikpay_source.sandbox import DEMO_API_KEY, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox

SCRIPT = Path(__file__).resolve().parent.parent / "pipelines" / "tikpay.py"


def cli_env(sandbox: Sandbox | None, tmp: Path, **extra: str) -> dict[str, str]:
    """A clean environment: the sandbox's URLs and demo credentials, dlt's data dir in ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env["DLT_DATA_DIR"] = str(tmp / "dlt")
    env["SOURCES__TIKPAY__MAX_WINDOW"] = "P1D"  # one job per window, unless a test sets it
    if sandbox is not None:
        env |= {
            "SOURCES__TIKPAY__BASE_URL": sandbox.base_url,
            "SOURCES__TIKPAY__TOKEN_URL": sandbox.token_url,
            "SOURCES__TIKPAY__CLIENT_ID": DEMO_CLIENT_ID,
            "SOURCES__TIKPAY__CLIENT_SECRET": DEMO_CLIENT_SECRET,
            "SOURCES__TIKPAY__API_KEY": DEMO_API_KEY,
        }
    return env | extra


def into_warehouse(warehouse: Warehouse) -> tuple[list[str], dict[str, str]]:
    """The script's flags and environment that load into ``warehouse`` (DuckDB, PostgreSQL or S3)."""
    args = ["--destination", warehouse.kind, "--dataset", warehouse.dataset]
    if isinstance(warehouse, PostgresWarehouse):
        return args, {"DESTINATION__POSTGRES__CREDENTIALS": warehouse.dsn}
    if isinstance(warehouse, DuckDBWarehouse):
        return args, {"DESTINATION__DUCKDB__CREDENTIALS": str(warehouse.path)}
    if isinstance(warehouse, S3Warehouse):
        server, prefix = warehouse.server, "DESTINATION__FILESYSTEM__"
        return ["--destination", "filesystem", "--dataset", warehouse.dataset], {
            f"{prefix}BUCKET_URL": warehouse.bucket_url,
            f"{prefix}CREDENTIALS__AWS_ACCESS_KEY_ID": server.key,
            f"{prefix}CREDENTIALS__AWS_SECRET_ACCESS_KEY": server.secret,
            f"{prefix}CREDENTIALS__ENDPOINT_URL": server.endpoint_url,
            f"{prefix}CREDENTIALS__REGION_NAME": server.region,
        }
    raise ValueError(f"the script is not run into {warehouse.kind} by these tests")


def one_day_args(report_type: str, *, poll_interval: str = "0.1") -> list[str]:
    """Flags for a run of one report type over 2025-03-01, polling quickly."""
    return ["--report-types", report_type, "--start", "2025-03-01", "--end", "2025-03-02",
            "--poll-interval", poll_interval]  # fmt: skip


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def kill_when(
    args: list[str], env: dict[str, str], cwd: Path, moment: Callable[[], bool], settle: float = 0.0
) -> None:
    """Run the script and SIGKILL it once ``moment()`` is true (after ``settle`` more seconds)."""
    doomed = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while not moment():
            assert doomed.poll() is None, "the run finished before the kill point was reached"
            assert time.monotonic() < deadline, "the kill point was never reached"
            time.sleep(0.002)
        time.sleep(settle)
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()


def catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler of its own for ``signum`` (Linux's /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    (mask,) = (line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (signum - 1) & 1)
