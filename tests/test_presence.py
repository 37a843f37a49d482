"""A window's rows are appended only where nothing of it can be in the table; elsewhere they replace it.

Each test loads real windows from the sandbox into DuckDB and PostgreSQL, puts the table in
one of the situations where the committed state does not know every row of it, and checks
that the next run leaves every window's rows there exactly once (the sandbox's counts).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dlt.pipeline.helpers import pipeline_drop
from harness import Harness, assert_exact, daily, files_per_step
from warehouses import Warehouse

from tikpay_source.sandbox import Sandbox

pytestmark = pytest.mark.warehouses("duckdb", "postgres")

TWO_DAYS = {"report_types": ["TRIPS"], "start_time": "2025-03-01", "end_time": "2025-03-03"}
THREE_DAYS = TWO_DAYS | {"end_time": "2025-03-04"}


def trips_merged(h: Harness) -> bool:
    """Whether the last load replaced windows of ``trips`` (dlt's merge job ran) rather than appending."""
    formats = files_per_step(h.pipeline(), "trips")[1]
    assert formats, "trips had no load job"
    return "sql" in formats


def test_windows_no_load_ever_touched_are_appended_without_a_merge(sandbox: Sandbox, tmp_path: Path) -> None:
    h = Harness(sandbox, tmp_path)

    h.run(**TWO_DAYS)
    assert not trips_merged(h)
    h.run(**THREE_DAYS)  # the next day only

    assert not trips_merged(h)
    assert_exact(h, "TRIPS", daily("2025-03-01", 3))
    assert "instead of appending" not in h.output.getvalue()


def test_a_load_lost_with_its_machine_before_it_was_recorded_is_replaced_not_doubled(
    sandbox: Sandbox, tmp_path: Path, warehouse: Warehouse
) -> None:
    """The third day's rows landed, but the load never reached ``_dlt_loads``: dlt restores the older state."""
    first = Harness(sandbox, tmp_path / "machine-1", warehouse=warehouse)
    first.run(**TWO_DAYS)
    first.run(**THREE_DAYS)
    unrecorded = first.pipeline().last_trace.last_load_info.loads_ids[-1]
    with first.pipeline().sql_client() as client:
        client.execute_sql(
            f"DELETE FROM {client.make_qualified_table_name('_dlt_loads')} WHERE load_id = %s", unrecorded
        )
    shutil.rmtree(first.pipelines_dir)  # the machine is gone, with the state it had saved locally

    again = Harness(sandbox, tmp_path / "machine-1", warehouse=warehouse)
    again.run(**THREE_DAYS)

    assert_exact(again, "TRIPS", daily("2025-03-01", 3))
    assert trips_merged(again)
    assert "table trips already holds rows of this window" in again.output.getvalue()


def test_after_a_state_reset_the_windows_already_loaded_are_replaced_not_doubled(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    h = Harness(sandbox, tmp_path)
    h.run(**TWO_DAYS)
    pipeline_drop(h.pipeline(), resources=["trips"], state_only=True)()  # dlt's own reset: the rows stay

    h.run(**THREE_DAYS)

    assert_exact(h, "TRIPS", daily("2025-03-01", 3))
    assert trips_merged(h)


@pytest.mark.parametrize(
    "first_loads",
    [
        pytest.param(("2025-03-01", "2025-03-03"), id="the first two days"),
        # day 1 is new and goes out as an append; day 2 is there: the whole run replaces
        pytest.param(("2025-03-02", "2025-03-04"), id="a later window"),
    ],
)
def test_a_second_pipeline_writing_the_same_dataset_replaces_the_windows_the_first_loaded(
    sandbox: Sandbox, tmp_path: Path, warehouse: Warehouse, first_loads: tuple[str, str]
) -> None:
    first = Harness(sandbox, tmp_path / "one", warehouse=warehouse)
    first.run(report_types=["TRIPS"], start_time=first_loads[0], end_time=first_loads[1])
    second = Harness(sandbox, tmp_path / "two", warehouse=warehouse, name="tikpay_other")

    second.run(**THREE_DAYS)

    assert_exact(second, "TRIPS", daily("2025-03-01", 3))
    assert trips_merged(second)
