"""Shared fixtures: a running sandbox per test, or a factory for sandboxes with custom settings;
the warehouse each end-to-end test loads into (DuckDB, PostgreSQL, Parquet files)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import loading_into
from warehouses import KINDS, POSTGRES_DSN_VARIABLE, PostgresWarehouse, Warehouse, make_warehouse

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


# --- warehouses: the end-to-end tests run into DuckDB, PostgreSQL and Parquet files -------------

# modules whose every test loads through the Harness and so runs once per warehouse
EVERY_WAREHOUSE_MODULES = ("test_source",)
# where dlt cannot do what a test proves: the test must fail there (strict), and a test of its
# own pins what does happen instead
KNOWN_WAREHOUSE_GAPS = {
    ("filesystem", "test_loading_a_window_again_replaces_its_rows"): (
        "dlt falls back from merge to append on plain Parquet files: a reloaded window is doubled "
        "(pinned by test_warehouses.py::test_on_plain_files_a_reloaded_window_is_appended_not_replaced)"
    ),
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "warehouses(*kinds): run the test once per warehouse kind (default: all of them)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``warehouse_kind`` for tests marked ``warehouses`` and every test of test_source.py."""
    marker = metafunc.definition.get_closest_marker("warehouses")
    if marker is None and metafunc.module.__name__ not in EVERY_WAREHOUSE_MODULES:
        return
    kinds = marker.args if marker is not None and marker.args else KINDS
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


@pytest.fixture(autouse=True)
def warehouse_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """The warehouse kind this test loads into (DuckDB unless parametrized); Harnesses pick it up."""
    kind: str = getattr(request, "param", "duckdb")
    dsn = request.getfixturevalue("postgres_dsn") if kind == "postgres" else None
    with loading_into(kind, dsn):
        yield kind


@pytest.fixture
def warehouse(warehouse_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Warehouse:
    """A warehouse of this test's kind that two 'machines' (two Harnesses) can share."""
    dsn = request.getfixturevalue("postgres_dsn") if warehouse_kind == "postgres" else None
    return make_warehouse(warehouse_kind, tmp_path / "warehouse", dsn)
