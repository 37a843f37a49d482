"""End-to-end load benchmark: the connector against DuckDB's own ``read_csv``, same file, same run.

What it does, for a TRIPS report of 1 million and of 5 million rows, each as CSV and as XML:

1. starts an in-process sandbox with ``rows_per_hour`` chosen so that one 50-hour window
   (Monday 2025-03-03 00:00 to Wednesday 02:00, Sydney time, no DST change) holds exactly
   the wanted number of rows;
2. submits one job per file type for that window and has the sandbox render its file
   *before* anything is timed (rendering synthetic data is the sandbox's cost, not the
   connector's); the connector's run then adopts that job, as it adopts any job already
   submitted for its window, and downloads the pre-rendered file;
3. runs each measured case in a fresh subprocess, so that its peak resident memory
   (``ru_maxrss``) is that case's alone: DuckDB's own ``CREATE TABLE … AS SELECT * FROM
   read_csv(file)`` into a fresh DuckDB file, and the connector's ``pipeline.run`` (job
   list, download over loopback HTTP, read, extract, normalize, load and merge) into
   another fresh DuckDB file;
4. runs two reference cases, each the same CSV file read by DuckDB with its defaults and
   appended to a fresh DuckDB file by a bare dlt resource: **dlt's floor** hands dlt Arrow
   record batches (dlt writes them as Parquet), **the file floor** a Parquet file DuckDB
   wrote (dlt imports it as it is, the connector's path into DuckDB). No HTTP, no
   whole-file typing, no check, no timestamps to localise, no merge: no connector on either
   path can be faster;
5. into PostgreSQL, at each size: PostgreSQL's own COPY of the CSV file into text
   columns (``COPY … FROM STDIN`` through psycopg2's ``copy_expert``, as ``\\copy`` does),
   and the connector's run per file type into a fresh schema, with their ratio; the server is
   ``$TIKPAY_TEST_POSTGRES`` or a throwaway one started and stopped here (see
   :mod:`postgres_server`);
6. prints rows per second, seconds and peak memory of each, and the ratios against the
   targets and against the floor. Times exclude interpreter start and imports.

Run it with ``python benchmarks/bench_load.py`` (about fifteen minutes on two cores, most of
it the sandbox rendering the files); ``--rows`` and ``--big-rows`` change the sizes,
``--big-rows 0`` skips the large case, ``--file-types csv`` the XML cases, ``--no-postgres``
the PostgreSQL cases.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postgres_server import DSN_VARIABLE, POSTGRES_CREDENTIALS, case_copy, drop_schemas, postgres_dsn
from whole_process import measure_whole, whole_lines

HOURS = 50
WINDOW = ("2025-03-03T00:00:00", "2025-03-05T02:00:00")  # 50 local hours inside one P7D window
TIMEZONE = "Australia/Sydney"
CSV_TARGET = 2.0
XML_TARGET = 4.0
PG_TARGET = 3.0  # x PostgreSQL's own COPY of the CSV file
MEMORY_TARGET_MB = 400.0
# issue "Speed": the script start to exit, against the native loader's process
WHOLE_TARGETS = {"csv DuckDB": 1.6, "csv PostgreSQL": 2.0, "xml DuckDB": 3.0}
# dlt settings the connector is run with, given as environment variables to its subprocess.
# DuckDB as a destination otherwise takes up to 80 % of RAM for its buffers while loading;
# with 64 MB (as the script sets it) and without insertion order (rows of a table have no order;
# the reader keeps the file's) the load is smaller and, at 5 million rows, faster than unbounded.
DLT_SETTINGS = {
    "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG": '{"memory_limit": "64MB", "preserve_insertion_order": false}'
}


# --- measured cases (each runs in its own subprocess) ------------------------------------


def _peak_mb() -> float:
    """Peak resident memory of this process and any child it waited for, in MB (Linux: KiB units)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024
    return max(own, children) * scale / 1e6


def _step_seconds(pipeline: Any) -> dict[str, float]:
    """Seconds of each of dlt's steps (extract, normalize, load, run) in the last run."""
    return {
        step.step: (step.finished_at - step.started_at).total_seconds() for step in pipeline.last_trace.steps
    }


def case_duckdb(csv_path: str, db_path: str) -> dict[str, Any]:
    """DuckDB's own reader with its defaults, straight from the local file into a table."""
    import duckdb

    started = time.perf_counter()
    with duckdb.connect(db_path) as con:
        con.execute(f"CREATE TABLE trips AS SELECT * FROM read_csv('{csv_path}')")
        rows = con.execute("SELECT count(*) FROM trips").fetchone()[0]
    return {"seconds": time.perf_counter() - started, "rows": rows}


def case_dlt_floor(csv_path: str, db_path: str, work_dir: str) -> dict[str, Any]:
    """dlt's own Arrow path and nothing else: DuckDB's reader hands batches to a bare resource.

    Same batch size, reader settings and dlt settings as the connector; append, so no staging copy and no
    merge. This is the least time any source that hands dlt Arrow batches can take.
    """
    import duckdb

    from tikpay_source.settings import BATCH_ROWS, READER_DUCKDB_CONFIG

    def batches() -> Any:
        with duckdb.connect(config=READER_DUCKDB_CONFIG) as con:
            yield from con.sql(f"SELECT * FROM read_csv('{csv_path}')").to_arrow_reader(BATCH_ROWS)

    return _append_to_duckdb("dlt_floor", batches, db_path, work_dir)[0]


def case_file_floor(csv_path: str, db_path: str, work_dir: str) -> dict[str, Any]:
    """dlt's file import and nothing else: DuckDB writes the CSV file as Parquet, a bare resource imports it.

    The connector's path into DuckDB without its work: same row groups, reader and dlt settings, append.
    """
    import dlt
    import duckdb
    import pyarrow as pa

    from tikpay_source.settings import BATCH_ROWS, READER_DUCKDB_CONFIG

    parquet = Path(work_dir) / "floor.parquet"

    def parquet_file() -> Any:
        with duckdb.connect(config=READER_DUCKDB_CONFIG) as con:
            con.execute("SET preserve_insertion_order = false")
            source = f"SELECT * FROM read_csv('{csv_path}')"
            con.execute(f"COPY ({source}) TO '{parquet}' (FORMAT PARQUET, ROW_GROUP_SIZE {BATCH_ROWS})")
            columns = con.sql(f"{source} LIMIT 0").to_arrow_table()
        # DuckDB's naive timestamps stay naive (else dlt would rewrite the file to give them a zone)
        naive = {
            field.name: {"data_type": "timestamp", "timezone": False}
            for field in columns.schema
            if pa.types.is_timestamp(field.type) and field.type.tz is None
        }
        item = dlt.mark.with_file_import(str(parquet), "parquet", hints=columns)
        item.meta.hints = dlt.mark.make_hints(columns=naive) if naive else None
        yield item

    result, pipeline = _append_to_duckdb("file_floor", parquet_file, db_path, work_dir)
    return result | {"formats": _formats(pipeline)}


def _append_to_duckdb(name: str, data: Any, db_path: str, work_dir: str) -> tuple[dict[str, Any], Any]:
    """A floor's timed run: ``data`` appended as ``trips`` by a bare resource; its result and pipeline."""
    import dlt
    import duckdb

    pipeline = dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(Path(work_dir) / "pipelines"),
        destination=dlt.destinations.duckdb(db_path),
        dataset_name="floor_data",
    )
    started = time.perf_counter()
    pipeline.run(dlt.resource(data, name="trips", write_disposition="append"))
    seconds = time.perf_counter() - started
    steps = _step_seconds(pipeline)
    with duckdb.connect(db_path, read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM floor_data.trips").fetchone()[0]
    return {"seconds": seconds, "rows": rows, "steps": steps}, pipeline


def case_connector(
    base_url: str, token_url: str, file_type: str, destination: str, target: str, work_dir: str
) -> dict[str, Any]:
    """The real source, end to end, into a fresh DuckDB file or PostgreSQL schema; with dlt's step times.

    ``target`` is the DuckDB file (PostgreSQL's DSN comes in dlt's setting); a PostgreSQL schema is
    dropped after counting.
    """
    import dlt

    from tikpay_source import tikpay
    from tikpay_source.sandbox import DEMO_API_KEY, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

    work = Path(work_dir)
    dataset = f"tikpay_bench_{os.getpid()}" if destination == "postgres" else "tikpay_data"
    pipeline = dlt.pipeline(
        pipeline_name="tikpay_bench",
        pipelines_dir=str(work / "pipelines"),
        destination=getattr(dlt.destinations, destination)(target or None),
        dataset_name=dataset,
    )
    source = tikpay(
        base_url=base_url,
        token_url=token_url,
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
        api_key=DEMO_API_KEY,
        report_types=["TRIPS"],
        file_type=file_type,
        timezone=TIMEZONE,
        start_time=WINDOW[0],
        end_time=WINDOW[1],
        window="P7D",
        ledger_dir=str(work / "ledger"),
        poll_interval=0.1,
        max_wait=120,
    )
    started = time.perf_counter()
    pipeline.run(source)
    seconds = time.perf_counter() - started
    steps = _step_seconds(pipeline)
    formats = _formats(pipeline)
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT count(*) FROM trips")[0][0]
    types = {
        name: column["data_type"]
        for name, column in pipeline.default_schema.get_table_columns("trips").items()
    }
    if destination == "postgres":
        drop_schemas(os.environ[POSTGRES_CREDENTIALS], dataset, f"{dataset}_staging")
    return {"seconds": seconds, "rows": rows, "steps": steps, "types": types, "formats": formats}


def _trips_jobs(pipeline: Any) -> list[Any]:
    """The load jobs of the trips table in the last run (their file extension is the format dlt loaded)."""
    info = pipeline.last_trace.last_load_info
    return [
        job
        for package in info.load_packages
        for job in package.jobs["completed_jobs"]
        if job.job_file_info.table_name == "trips"
    ]


def _formats(pipeline: Any) -> list[str]:
    """The formats of the files trips was loaded from, a Parquet file's with who wrote it (DuckDB or dlt)."""
    import pyarrow.parquet as pq

    formats = set()
    for job in _trips_jobs(pipeline):
        file_format = job.job_file_info.file_format
        if file_format == "parquet":
            writer = pq.ParquetFile(job.file_path).metadata.created_by.split(" version")[0]
            file_format += " by " + ("DuckDB" if writer == "DuckDB" else "dlt")
        formats.add(file_format)
    return sorted(formats)


def run_case(args: list[str], postgres: str | None = None) -> dict[str, Any]:
    """Run one case in a fresh interpreter and return its JSON result with its peak memory.

    A PostgreSQL DSN goes to the case as dlt's credentials setting, never on its command line.
    """
    env = {**os.environ, **DLT_SETTINGS} if args[0] != "duckdb" else None
    if postgres is not None:
        env = {**(env or os.environ), POSTGRES_CREDENTIALS: postgres}
    done = subprocess.run(
        [sys.executable, __file__, "--case", *args], capture_output=True, text=True, check=False, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(f"case {args[0]} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def case_main(argv: list[str]) -> None:
    """Entry point of a measured subprocess: run the case, print its result as one JSON line."""
    name, *rest = argv
    cases = {
        "duckdb": case_duckdb,
        "floor": case_dlt_floor,
        "file floor": case_file_floor,
        "connector": case_connector,
        "copy": case_copy,
    }
    result = cases[name](*rest)
    result["peak_mb"] = _peak_mb()
    print(json.dumps(result, default=str))


# --- orchestration ------------------------------------------------------------------------


@dataclass
class Prepared:
    """A sandbox with rendered report files for the benchmark window."""

    sandbox: Any
    files: dict[str, Path]
    render_seconds: dict[str, float]


def prepare(rows: int, file_types: tuple[str, ...], scratch: Path) -> Prepared:
    """Start a sandbox holding ``rows`` TRIPS rows in WINDOW and render one job's file per type.

    The connector later adopts these jobs (same report type, window and file type), so
    the file it downloads is already on the sandbox's disk.
    """
    from tikpay_source.api.client import TikpayClient
    from tikpay_source.api.ledger import RequestLedger
    from tikpay_source.config import Credentials
    from tikpay_source.planning.budget import RequestBudget
    from tikpay_source.sandbox import (
        DEMO_API_KEY,
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        Sandbox,
        SandboxSettings,
    )

    if rows % HOURS:
        raise SystemExit(f"--rows must be a multiple of {HOURS}")
    settings = SandboxSettings(
        rows_per_hour={"TRIPS": rows // HOURS},
        complete_after_list_calls=0,
        complete_after_seconds=0.0,
        quota_limit=1000,
    )
    sandbox = Sandbox(settings).start()
    ledger = RequestLedger.local(scratch / "bench-ledger", DEMO_API_KEY, limit=1000)
    credentials = Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_API_KEY)
    client = TikpayClient(sandbox.base_url, sandbox.token_url, credentials, RequestBudget(ledger))
    files: dict[str, Path] = {}
    render: dict[str, float] = {}
    try:
        job_ids = {ft: client.submit("TRIPS", *WINDOW, ft) for ft in file_types}
        client.list_jobs()
        for file_type, job_id in job_ids.items():
            started = time.perf_counter()
            files[file_type] = sandbox.report_file(job_id)
            render[file_type] = time.perf_counter() - started
    finally:
        client.close()
    return Prepared(sandbox, files, render)


def measure(
    prepared: Prepared, rows: int, scratch: Path, file_types: tuple[str, ...], postgres: str | None
) -> dict[str, Any]:
    """DuckDB's own load of the CSV, dlt's floor, then the connector per file type, each in its own process.

    With a PostgreSQL DSN, also PostgreSQL's own COPY of the CSV file and the connector per file type into it.
    """
    results: dict[str, Any] = {}
    sb = prepared.sandbox
    csv_file = str(prepared.files["csv"])
    results["duckdb"] = run_case(["duckdb", csv_file, str(scratch / f"duck-{rows}.duckdb")])
    floor_dir = scratch / f"floor-{rows}"
    floor_dir.mkdir()
    results["floor"] = run_case(["floor", csv_file, str(floor_dir / "floor.duckdb"), str(floor_dir)])
    file_floor_dir = scratch / f"file-floor-{rows}"
    file_floor_dir.mkdir()
    results["file floor"] = run_case(
        ["file floor", csv_file, str(file_floor_dir / "floor.duckdb"), str(file_floor_dir)]
    )
    for file_type in file_types:
        work = scratch / f"connector-{file_type}-{rows}"
        work.mkdir()
        results[file_type] = run_case(
            [
                "connector",
                sb.base_url,
                sb.token_url,
                file_type,
                "duckdb",
                str(work / "tikpay.duckdb"),
                str(work),
            ]
        )
    if postgres is not None:
        results["copy"] = run_case(["copy", csv_file, f"tikpay_copy_{rows}"], postgres)
        for file_type in file_types:
            work = scratch / f"connector-postgres-{file_type}-{rows}"
            work.mkdir()
            results[f"{file_type} pg"] = run_case(
                ["connector", sb.base_url, sb.token_url, file_type, "postgres", "", str(work)], postgres
            )
    for name, result in results.items():
        if result["rows"] != rows:
            raise SystemExit(f"{name} loaded {result['rows']} rows, expected {rows}")
    return results


def describe(
    label: str, result: dict[str, Any], baseline: dict[str, Any] | None, against: str = "DuckDB"
) -> str:
    rate = result["rows"] / result["seconds"]
    line = f"{label:<28} {result['seconds']:7.2f} s  {rate:>12,.0f} rows/s  peak {result['peak_mb']:6.0f} MB"
    if baseline is not None:
        line += f"  ratio {result['seconds'] / baseline['seconds']:.2f} x {against}"
    if result.get("formats"):
        line += f"  [{'/'.join(result['formats'])}]"
    if "steps" in result:
        line += "  (" + ", ".join(f"{k} {v:.1f}s" for k, v in result["steps"].items()) + ")"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=5_000_000, help="0 skips the large case")
    parser.add_argument("--file-types", default="csv,xml")
    parser.add_argument(
        "--no-postgres",
        action="store_true",
        help=f"skip PostgreSQL (else ${DSN_VARIABLE} or a throwaway server)",
    )
    opts = parser.parse_args()
    file_types = tuple(opts.file_types.split(","))
    if "csv" not in file_types:
        raise SystemExit("--file-types must include csv: the native tools' baselines load the CSV file")
    server = contextlib.nullcontext(None) if opts.no_postgres else postgres_dsn()
    with tempfile.TemporaryDirectory(prefix="tikpay-bench-") as tmp, server as postgres:
        scratch = Path(tmp)
        runs: dict[int, dict[str, Any]] = {}
        whole: dict[int, dict[str, Any]] = {}
        for rows in (opts.rows, opts.big_rows):
            if rows <= 0:
                continue
            prepared = prepare(rows, file_types, scratch)
            try:
                sizes = ", ".join(f"{ft} {p.stat().st_size / 1e6:.0f} MB" for ft, p in prepared.files.items())
                renders = ", ".join(f"{ft} {s:.0f} s" for ft, s in prepared.render_seconds.items())
                print(f"# {rows:,} TRIPS rows: {sizes}; rendered by the sandbox before timing ({renders})")
                runs[rows] = res = measure(prepared, rows, scratch, file_types, postgres)
                whole[rows] = measure_whole(
                    prepared.sandbox, prepared.files, rows, scratch, postgres, DLT_SETTINGS, WINDOW, TIMEZONE
                )
            finally:
                prepared.sandbox.stop()
            print(describe(f"duckdb read_csv {rows:,}", res["duckdb"], None))
            print(describe(f"dlt floor {rows:,}", res["floor"], res["duckdb"]))
            print(describe(f"file floor {rows:,}", res["file floor"], res["duckdb"]))
            for ft in file_types:
                print(describe(f"connector {ft} {rows:,}", res[ft], res["duckdb"]))
            if "copy" in res:
                print(describe(f"postgres COPY {rows:,}", res["copy"], None))
                for ft in file_types:
                    print(describe(f"connector {ft} pg {rows:,}", res[f"{ft} pg"], res["copy"], "COPY"))
        print("# dlt settings of the connector runs:", json.dumps(DLT_SETTINGS))
        print("# column types (connector, csv):", json.dumps(runs[opts.rows]["csv"]["types"]))
    print("\n".join(summary(runs, opts.rows, file_types)))
    print("\n".join(whole_lines(whole, WHOLE_TARGETS)))


def summary(runs: dict[int, dict[str, Any]], first: int, file_types: tuple[str, ...]) -> list[str]:
    """The targets, each beside its figure: time ratios at the first size, peak memory at every size."""
    lines = []
    duck = runs[first]
    for ft in file_types:
        target = CSV_TARGET if ft == "csv" else XML_TARGET
        ratio = duck[ft]["seconds"] / duck["duckdb"]["seconds"]
        lines.append(f"{ft.upper()} end to end: {ratio:.2f} x DuckDB's own read_csv (target <= {target})")
    native = duck["duckdb"]["seconds"]
    floor, file_floor = duck["floor"]["seconds"], duck["file floor"]["seconds"]
    lines.append(
        f"dlt's floor (bare Arrow batches, appended): {floor / native:.2f} x DuckDB's own read_csv; "
        f"the file floor (a Parquet file DuckDB wrote, imported): {file_floor / native:.2f} x; "
        f"connector CSV {duck['csv']['seconds'] / file_floor:.2f} x the file floor"
    )
    if "copy" in duck:
        for ft in file_types:
            into_pg, copy = duck[f"{ft} pg"], duck["copy"]
            lines.append(
                f"PostgreSQL, {ft.upper()} end to end: {into_pg['seconds']:.2f} s, "
                f"{into_pg['seconds'] / copy['seconds']:.2f} x PostgreSQL's own COPY ({copy['seconds']:.2f} s)"
                f" (target <= {PG_TARGET})"
            )
    cases = [(ft, ft, "DuckDB") for ft in file_types]
    if "copy" in duck:
        cases += [(f"{ft} pg", ft, "PostgreSQL") for ft in file_types]
    for key, ft, into in cases:
        peaks = "; ".join(f"{rows:,} rows {runs[rows][key]['peak_mb']:.0f} MB" for rows in runs)
        lines.append(
            f"connector peak memory, {ft.upper()} into {into}: {peaks} (target <= {MEMORY_TARGET_MB:.0f} MB)"
        )
    return lines


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--case":
        case_main(sys.argv[2:])
    else:
        main()
