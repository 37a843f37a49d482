"""PostgreSQL for the load benchmark: a throwaway server, and PostgreSQL's own COPY as the baseline.

The benchmark compares the connector with what PostgreSQL does on its own (``\\copy`` of
the same file into a table of text columns), so it needs a server. ``$TIKPAY_TEST_POSTGRES``
names one; otherwise a cluster of its own is started on a free loopback port the way
``.ci/run`` does (initdb as the ``postgres`` user, trust auth, ``fsync=off``) and stopped
at the end, so nothing is left behind on the machine.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DSN_VARIABLE = "TIKPAY_TEST_POSTGRES"
# how a measured case is told its PostgreSQL server: dlt's own setting, so the DSN is never on a command line
POSTGRES_CREDENTIALS = "DESTINATION__POSTGRES__CREDENTIALS"
SERVER_USER = "postgres"
BENCH_ROLE = "tikpay_bench"  # role and database of a throwaway server; its password is its name


def _server_bin() -> Path:
    """The newest PostgreSQL server binaries: Debian's versioned folders first, else ``initdb`` on PATH."""
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if folders:
        return Path(folders[-1])
    initdb = shutil.which("initdb")
    if initdb is None:
        raise SystemExit(f"no PostgreSQL server binaries found; install postgresql or set ${DSN_VARIABLE}")
    return Path(initdb).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(*command: str) -> None:
    """Run a server command as ``postgres``; a failure is one line naming the command, not a traceback."""
    try:
        subprocess.run(
            ["runuser", "-u", SERVER_USER, "--", *command], check=True, capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        said = (getattr(exc, "stderr", None) or str(exc)).strip().splitlines()
        raise SystemExit(
            f"could not run {Path(command[0]).name} for a throwaway PostgreSQL server "
            f"({said[-1] if said else 'no message'}); set ${DSN_VARIABLE} or pass --no-postgres"
        ) from None


@contextlib.contextmanager
def postgres_dsn() -> Iterator[str]:
    """A DSN to load into: ``$TIKPAY_TEST_POSTGRES``, or a throwaway server stopped on exit."""
    if os.environ.get(DSN_VARIABLE):
        yield os.environ[DSN_VARIABLE]
        return
    bin_dir, port = _server_bin(), _free_port()
    data = Path(tempfile.mkdtemp(prefix="tikpay-bench-pg-"))
    cluster = str(data / "db")
    pg_ctl = str(bin_dir / "pg_ctl")
    started = False
    try:
        shutil.chown(data, SERVER_USER)
        _as_server_user(
            str(bin_dir / "initdb"), "-D", cluster, "-U", SERVER_USER, "--auth=trust", "-E", "UTF8"
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off"
        _as_server_user(pg_ctl, "-D", cluster, "-l", str(data / "server.log"), "-w", "-o", options, "start")
        started = True
        # dlt asks for a password even where the server trusts loopback, as .ci/run's role has one
        _as_server_user(
            str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", SERVER_USER, "-q",
            "-v", "ON_ERROR_STOP=1", "-c", f"CREATE ROLE {BENCH_ROLE} LOGIN PASSWORD '{BENCH_ROLE}'",
            "-c", f"CREATE DATABASE {BENCH_ROLE} OWNER {BENCH_ROLE}",
        )  # fmt: skip
        yield f"postgresql://{BENCH_ROLE}:{BENCH_ROLE}@127.0.0.1:{port}/{BENCH_ROLE}"
    finally:
        if started:
            _as_server_user(pg_ctl, "-D", cluster, "-m", "fast", "stop")
        shutil.rmtree(data, ignore_errors=True)


def drop_schemas(dsn: str, *schemas: str) -> None:
    """Drop what a case created (dlt stages merges in ``<dataset>_staging``)."""
    import psycopg2

    with psycopg2.connect(dsn) as con, con.cursor() as cur:
        for schema in schemas:
            cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    con.close()


def case_postgres_copy(csv_path: str, dsn: str, schema: str) -> dict[str, Any]:
    """PostgreSQL's own load of the file, as ``\\copy`` does it: ``COPY … FROM STDIN`` into text columns."""
    import psycopg2

    with open(csv_path, encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    columns = ", ".join(f'"{name}" text' for name in header)
    started = time.perf_counter()
    with psycopg2.connect(dsn) as con, con.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
        cur.execute(f'CREATE TABLE "{schema}".trips ({columns})')
        with open(csv_path, "rb") as data:
            cur.copy_expert(f'COPY "{schema}".trips FROM STDIN WITH (FORMAT CSV, HEADER)', data)
    seconds = time.perf_counter() - started
    with con.cursor() as cur:
        cur.execute(f'SELECT count(*) FROM "{schema}".trips')
        (rows,) = cur.fetchone()
    con.close()
    return {"seconds": seconds, "rows": rows}


def case_copy(csv_path: str, schema: str) -> dict[str, Any]:
    """The benchmark's case: PostgreSQL's own COPY of the CSV file, into a schema dropped afterwards."""
    dsn = os.environ[POSTGRES_CREDENTIALS]
    try:
        return case_postgres_copy(csv_path, dsn, schema)
    finally:
        drop_schemas(dsn, schema)
