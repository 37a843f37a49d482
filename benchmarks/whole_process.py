"""Whole processes, start to exit, as a user and a scheduler see them: the script beside each native loader.

What ``bench_load`` times inside one process leaves out what a run really costs: the
interpreter starting, the imports, the token and the job list, the summary and the views.
Here every case is a process of its own, timed from its start to its exit, with its own
peak memory (``os.wait4``):

- DuckDB's own loader: ``python -c`` creating the table from ``read_csv`` of the file;
- PostgreSQL's own loader: ``psql -c "\\copy …"`` into a table of text columns made
  beforehand (COPY does no typing; the connector types every column);
- the connector: ``python pipelines/tikpay.py`` against the benchmark's sandbox, which
  holds the rendered file, into a fresh DuckDB file or PostgreSQL schema.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

SCRIPT = Path(__file__).resolve().parent.parent / "pipelines" / "tikpay.py"


# Runs the command and writes its seconds and rusage to a file. A child's peak memory counts the image
# of the process that forked it (Linux records it at exec), so the command is started by this small
# interpreter, not by the benchmark holding a sandbox and its files.
_MEASURE = """
import json, os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(json.loads(sys.argv[2]))
_, status, usage = os.wait4(child.pid, 0)
seconds = time.perf_counter() - started
code = os.waitstatus_to_exitcode(status)
open(sys.argv[1], "w").write(json.dumps({"seconds": seconds, "maxrss": usage.ru_maxrss, "code": code}))
"""


def timed(command: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Seconds from start to exit and the peak resident memory (MB) of one process; fails loudly."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "measured.json"
        done = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(report), json.dumps(command)], env=env, capture_output=True
        )
        measured = json.loads(report.read_text()) if report.exists() else {"code": done.returncode}
    if measured["code"] != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")[-3000:]
        raise RuntimeError(f"{command[:2]} failed:\n{output}")
    scale = 1 if sys.platform == "darwin" else 1024
    return {"seconds": measured["seconds"], "peak_mb": measured["maxrss"] * scale / 1e6}


def native_duckdb(csv_path: Path, db_path: Path) -> dict[str, Any]:
    """DuckDB's reader with its defaults, as a process: the table from the local file."""
    code = (
        "import duckdb, sys; con = duckdb.connect(sys.argv[2]);"
        " con.execute(f\"CREATE TABLE trips AS SELECT * FROM read_csv('{sys.argv[1]}')\")"
    )
    result = timed([sys.executable, "-c", code, str(csv_path), str(db_path)])
    import duckdb

    with duckdb.connect(str(db_path), read_only=True) as con:
        return result | {"rows": con.execute("SELECT count(*) FROM trips").fetchone()[0]}


def libpq_env(dsn: str) -> dict[str, str]:
    """A DSN as libpq's environment variables, so no password is on a command line."""
    url = urlsplit(dsn)
    return os.environ | {
        "PGHOST": url.hostname or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "PGUSER": unquote(url.username or ""),
        "PGPASSWORD": unquote(url.password or ""),
        "PGDATABASE": url.path.lstrip("/"),
    }


def native_psql_copy(csv_path: Path, dsn: str, table: str) -> dict[str, Any]:
    """``psql``'s ``\\copy`` of the file into a table of text columns (created, and dropped after, untimed)."""
    import psycopg2

    header = csv_path.open(encoding="utf-8").readline().strip().split(",")
    with psycopg2.connect(dsn) as con, con.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {table}")
        cur.execute(f"CREATE TABLE {table} ({', '.join(f'{name} text' for name in header)})")
    try:
        copy = f"\\copy {table} FROM '{csv_path}' WITH (FORMAT csv, HEADER true)"
        result = timed(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-c", copy], libpq_env(dsn))
        with psycopg2.connect(dsn) as con, con.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {table}")
            return result | {"rows": cur.fetchone()[0]}
    finally:
        with psycopg2.connect(dsn) as con, con.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {table}")


def script(
    sandbox: Any, window: tuple[str, str], timezone: str, file_type: str, work: Path, env: dict[str, str]
) -> dict[str, float]:
    """``python pipelines/tikpay.py`` for the window's one job (already rendered), quietly, start to exit.

    ``env`` holds the destination's settings (its credentials, dlt's settings for it).
    """
    from tikpay_source.sandbox import DEMO_API_KEY, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

    work.mkdir(parents=True, exist_ok=True)
    settings = {
        "SOURCES__TIKPAY__BASE_URL": sandbox.base_url,
        "SOURCES__TIKPAY__TOKEN_URL": sandbox.token_url,
        "SOURCES__TIKPAY__CLIENT_ID": DEMO_CLIENT_ID,
        "SOURCES__TIKPAY__CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "SOURCES__TIKPAY__API_KEY": DEMO_API_KEY,
        "SOURCES__TIKPAY__LEDGER_DIR": str(work / "ledger"),
        "DLT_DATA_DIR": str(work / "dlt"),
    }
    flags = ["--report-types", "TRIPS", "--file-type", file_type, "--timezone", timezone]
    flags += ["--start", window[0], "--end", window[1], "--window", "P7D", "--max-wait", "120"]
    flags += ["--poll-interval", "0.1", "--quiet"]
    return timed([sys.executable, str(SCRIPT), *flags], os.environ | settings | env)


def measure_whole(
    sandbox: Any,
    files: dict[str, Path],
    rows: int,
    scratch: Path,
    postgres: str | None,
    dlt_settings: dict[str, str],
    window: tuple[str, str],
    timezone: str,
) -> dict[str, dict[str, Any]]:
    """Every whole-process case at one size: the native loaders, then the script per file type and destination."""
    import duckdb
    from postgres_server import drop_schemas

    results: dict[str, dict[str, Any]] = {
        "duckdb": native_duckdb(files["csv"], scratch / f"whole-{rows}.duckdb")
    }
    for file_type in files:
        db = scratch / f"whole-script-{file_type}-{rows}.duckdb"
        env = dlt_settings | {"DESTINATION__DUCKDB__CREDENTIALS": str(db)}
        result = script(sandbox, window, timezone, file_type, scratch / f"whole-{file_type}-{rows}", env)
        with duckdb.connect(str(db), read_only=True) as con:
            results[file_type] = result | {
                "rows": con.execute("SELECT count(*) FROM tikpay_data.trips").fetchone()[0]
            }
    if postgres is not None:
        import psycopg2

        results["copy"] = native_psql_copy(files["csv"], postgres, f"tikpay_psql_{rows}")
        for file_type in files:
            dataset = f"tikpay_whole_{file_type}_{rows}"
            env = {
                "DESTINATION_TYPE": "postgres",
                "DATASET_NAME": dataset,
                "DESTINATION__POSTGRES__CREDENTIALS": postgres,
            }
            result = script(
                sandbox, window, timezone, file_type, scratch / f"whole-pg-{file_type}-{rows}", env
            )
            with psycopg2.connect(postgres) as con, con.cursor() as cur:
                cur.execute(f"SELECT count(*) FROM {dataset}.trips")
                results[f"{file_type} pg"] = result | {"rows": cur.fetchone()[0]}
            drop_schemas(postgres, dataset, f"{dataset}_staging")
    for name, result in results.items():
        if result["rows"] != rows:
            raise SystemExit(f"whole process {name} loaded {result['rows']} rows, expected {rows}")
    return results


def whole_lines(runs: dict[int, dict[str, Any]], targets: dict[str, float]) -> list[str]:
    """Each path's whole-process ratio beside its native loader, at every size, with its peak memory."""
    lines = []
    for rows, results in runs.items():
        for key, result in results.items():
            if key in ("duckdb", "copy"):
                continue
            native, into = ("copy", "PostgreSQL") if key.endswith(" pg") else ("duckdb", "DuckDB")
            file_type = key.removesuffix(" pg")
            ratio = result["seconds"] / results[native]["seconds"]
            target = targets.get(f"{file_type} {into}")
            loader = "psql \\copy" if native == "copy" else "python read_csv"
            wanted = f" (target <= {target})" if target else ""
            lines.append(
                f"whole process, {file_type.upper()} into {into}, {rows:,} rows: script "
                f"{result['seconds']:.2f} s, {loader} {results[native]['seconds']:.2f} s: {ratio:.2f} x{wanted}; "
                f"peak {result['peak_mb']:.0f} MB (native {results[native]['peak_mb']:.0f} MB)"
            )
    return lines
