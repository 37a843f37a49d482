"""Shared fixtures: a running sandbox per test, or a factory for sandboxes with custom settings;
the warehouse each end-to-end test loads into (DuckDB, PostgreSQL, a lake folder, S3 on loopback)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import loading_into
from warehouses import KINDS, POSTGRES_DSN_VARIABLE, PostgresWarehouse, S3Server, Warehouse, make_warehouse

from tikpay_source.sandbox import Sandbox, SandboxSettings

# The pace the suite is written at: a job shows IN_PROGRESS on the first list call that sees it
# and is done at the next, whatever the clock says. (The sandbox's own default, a job that takes
# two seconds, is for people trying the connector; tests of the timing ask for it explicitly.)
SUITE_PACE = {"complete_after_list_calls": 1, "complete_after_seconds": 0.0}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A sandbox at the suite's pace, started for one test and stopped after it."""
    with Sandbox(SandboxSettings(**SUITE_PACE)) as sb:
        yield sb


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """Factory: ``make_sandbox(**SandboxSettings kwargs)`` starts a sandbox (at the suite's pace unless
    the settings say otherwise); all stop at teardown."""
    started: list[Sandbox] = []

    def _make(**settings: Any) -> Sandbox:
        sb = Sandbox(SandboxSettings(**(SUITE_PACE | settings))).start()
        started.append(sb)
        return sb

    yield _make
    for sb in started:
        sb.stop()


# --- warehouses: the end-to-end tests run into DuckDB, PostgreSQL, a lake folder and S3 ---------

# modules whose every test loads through the Harness and so runs once per warehouse: DuckDB,
# PostgreSQL and Delta tables in a folder. S3 differs from the folder only in fsspec's backend
# (and is three times slower, through moto): a test of it there says so with
# ``@pytest.mark.warehouses(*KINDS)``; test_lake, test_warehouses and test_many_places run on S3 too.
EVERY_WAREHOUSE_MODULES = ("test_source",)
EVERY_WAREHOUSE_KINDS = ("duckdb", "postgres", "filesystem")
# where dlt cannot do what a test proves: the test must fail there (strict), and a test of its
# own pins what does happen instead
_DELTA_TYPES = (
    "a Delta table has one schema, which the connector does not widen: the window is refused naming the "
    "column (pinned by test_lake.py::test_on_delta_tables_a_column_that_must_widen_refuses_its_window)"
)
KNOWN_WAREHOUSE_GAPS: dict[tuple[str, str], str] = {
    (
        kind,
        "test_a_column_keeps_the_type_it_was_first_loaded_with_and_widens_when_a_file_needs_it",
    ): _DELTA_TYPES
    for kind in ("filesystem", "s3")
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "warehouses(*kinds): run the test once per warehouse kind (default: all of them)"
    )
    config.addinivalue_line("markers", "unit: no server and no process of its own; `pytest -m unit`")
    config.addinivalue_line("markers", "e2e: against a sandbox, a warehouse or a process of its own")
    config.addinivalue_line(
        "markers", "slow: more seeds of the soak test; `pytest -m slow`, not in the suite"
    )


# --- the two floors: unit tests (no server, seconds in all) and end-to-end tests --------------

# fixtures that start a server (the sandbox, a warehouse, S3): a test that uses one is end-to-end
SERVER_FIXTURES = frozenset(
    {"sandbox", "make_sandbox", "client", "job", "make_client", "warehouse", "s3_server"}
)


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects by the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test ``unit`` or ``e2e``: end-to-end if it uses a server or is marked so (a subprocess).

    Tests marked ``slow`` run only when ``-m`` names them (``pytest -m slow``), whatever else it selects.
    """
    if "slow" not in (config.getoption("markexpr") or ""):
        slow = [item for item in items if item.get_closest_marker("slow")]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [item for item in items if item not in slow]
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        uses_server = (
            bool(SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))) or "warehouse_kind" in params
        )
        item.add_marker(
            pytest.mark.e2e if uses_server or item.get_closest_marker("e2e") else pytest.mark.unit
        )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``warehouse_kind`` for tests marked ``warehouses`` (all four kinds unless it names some)
    and every test of test_source.py (the three of EVERY_WAREHOUSE_KINDS unless marked)."""
    marker = metafunc.definition.get_closest_marker("warehouses")
    if marker is None and metafunc.module.__name__ not in EVERY_WAREHOUSE_MODULES:
        return
    kinds = (marker.args or KINDS) if marker is not None else EVERY_WAREHOUSE_KINDS
    params = [
        pytest.param(
            kind,
            id=kind,
            marks=[pytest.mark.xfail(strict=True, reason=reason)]
            if (reason := KNOWN_WAREHOUSE_GAPS.get((kind, metafunc.function.__name__)))
            else [],
        )
        for kind in kinds
    ]
    metafunc.parametrize("warehouse_kind", params, indirect=True)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """The test PostgreSQL server from $TIKPAY_TEST_POSTGRES; skipped locally when absent, fails on CI.

    Every schema the tests created is dropped at the end, so a developer's server stays clean.
    """
    import psycopg2

    dsn = os.environ.get(POSTGRES_DSN_VARIABLE, "")
    problem = (
        "" if dsn else f"${POSTGRES_DSN_VARIABLE} is not set (e.g. postgresql://user:pw@127.0.0.1:5432/db)"
    )
    if dsn:
        try:
            psycopg2.connect(dsn, connect_timeout=5).close()
        except psycopg2.OperationalError as exc:
            problem = f"no PostgreSQL server at ${POSTGRES_DSN_VARIABLE}: {str(exc).strip().splitlines()[0]}"
    if problem:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"CI must run the PostgreSQL tests, but {problem}")
        pytest.skip(f"PostgreSQL tests need a server: {problem}")
    yield dsn
    with psycopg2.connect(dsn) as con, con.cursor() as cur:
        for schema in sorted(PostgresWarehouse.created):
            for name in (schema, f"{schema}_staging"):  # dlt stages merges in <dataset>_staging
                cur.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    con.close()


S3_BUCKET = "tikpay-test"


@contextlib.contextmanager
def moto_server(log: Path, **env: str) -> Iterator[str]:
    """moto's S3 API server on 127.0.0.1 and a free port, as a process of its own; yields its URL.

    Not moto's ThreadedMotoServer: deltalake holds the GIL while it waits for some S3
    answers, so a server thread in the test process would never answer.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=out,
            env=os.environ | env,
        )
        try:
            wait_for_port(port, server)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(timeout=10)


def s3_client(server: S3Server, service: str = "s3") -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.key,
        aws_secret_access_key=server.secret,
        region_name=server.region,
    )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3 API on loopback with one bucket; each test uses a prefix of its own."""
    with moto_server(tmp_path_factory.mktemp("moto") / "server.log") as url:
        endpoint = S3Server(url, S3_BUCKET)
        s3_client(endpoint).create_bucket(Bucket=S3_BUCKET)
        yield endpoint


@pytest.fixture
def read_only_s3(tmp_path: Path) -> Iterator[S3Server]:
    """A bucket its credentials may read but not write: moto's server enforcing IAM, with a read-only user."""
    setup_calls = 4  # moto lets this many requests through unauthenticated: the bucket, the user and its key
    with moto_server(tmp_path / "moto.log", INITIAL_NO_AUTH_ACTION_COUNT=str(setup_calls)) as url:
        admin = S3Server(url, "tikpay-read-only")
        s3_client(admin).create_bucket(Bucket=admin.bucket)
        iam = s3_client(admin, "iam")
        iam.create_user(UserName="reader")
        reading = ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": reading, "Resource": "*"}],
        }
        iam.put_user_policy(UserName="reader", PolicyName="read-only", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        yield S3Server(url, admin.bucket, key=key["AccessKeyId"], secret=key["SecretAccessKey"])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Until something listens on 127.0.0.1:``port``; fails if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert process.poll() is None, f"the S3 server exited with code {process.returncode}"
        assert time.monotonic() < deadline, f"no S3 server on 127.0.0.1:{port} after {timeout:g}s"
        time.sleep(0.1)


def warehouse_service(kind: str, request: pytest.FixtureRequest) -> Any:
    """The server a warehouse kind needs (PostgreSQL's DSN, the S3 server), started for the session."""
    fixture = {"postgres": "postgres_dsn", "s3": "s3_server"}.get(kind)
    return request.getfixturevalue(fixture) if fixture else None


@pytest.fixture(autouse=True)
def warehouse_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """The warehouse kind this test loads into (DuckDB unless parametrized); Harnesses pick it up."""
    kind: str = getattr(request, "param", "duckdb")
    with loading_into(kind, warehouse_service(kind, request)):
        yield kind


@pytest.fixture
def warehouse(warehouse_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Warehouse:
    """A warehouse of this test's kind that two 'machines' (two Harnesses) can share."""
    return make_warehouse(warehouse_kind, tmp_path / "warehouse", warehouse_service(warehouse_kind, request))
