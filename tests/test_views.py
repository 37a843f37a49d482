"""The BI views on DuckDB and PostgreSQL, against the sandbox's ground truth, day by local day."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dlt.pipeline.helpers import pipeline_drop
from harness import Harness

from tikpay_source.loading.views import VIEWS, create_views
from tikpay_source.sandbox import Fault, Sandbox

pytestmark = pytest.mark.warehouses("duckdb", "postgres")

# two local days around the 2025-04-06 fall-back in Sydney: a 25-hour day must stay one day
START, END = "2025-04-05T00:00:00", "2025-04-07T00:00:00"

Row = dict[str, str]


@pytest.fixture
def loaded(sandbox: Sandbox, tmp_path: Path) -> Harness:
    """All four reports loaded for the two days, and the views made as the script makes them."""
    h = Harness(sandbox, tmp_path)
    h.run(start_time=START[:10], end_time=END[:10])
    assert create_views(h.pipeline()) == [f"views: {view.name} ready" for view in VIEWS]
    return h


def cents(values: list[str]) -> Decimal | None:
    """SUM over file values as SQL does it: empty values ignored, None when nothing is left."""
    present = [Decimal(v) for v in values if v]
    return sum(present, Decimal("0.00")) if present else None


def group(rows: list[Row], key: Callable[[Row], tuple[str, ...]]) -> dict[tuple[str, ...], list[Row]]:
    groups: dict[tuple[str, ...], list[Row]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return groups


def view_rows(h: Harness, view: str, columns: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The view's rows keyed by their first two columns, the local date as YYYY-MM-DD text."""
    rows = h.query(f"SELECT {columns} FROM {view}")
    return {(str(r[0]), *r[1:2]): tuple(r[2:]) for r in rows}


def test_daily_trips_by_route(loaded: Harness) -> None:
    truth = group(
        loaded.sandbox.ground_truth("TRIPS", START, END), lambda r: (r["tap_on_time"][:10], r["route_id"])
    )
    expected = {
        key: (rows[0]["route_name"], rows[0]["mode"], len(rows), cents([r["fare_amount"] for r in rows]))
        for key, rows in truth.items()
    }
    got = view_rows(
        loaded, "daily_trips_by_route", "service_date, route_id, route_name, mode, trips, fare_amount"
    )
    assert got == expected and {day for day, _ in got} == {"2025-04-05", "2025-04-06"}


def test_daily_taps_by_stop(loaded: Harness) -> None:
    truth = group(
        loaded.sandbox.ground_truth("TAPS", START, END), lambda r: (r["tap_time"][:10], r["stop_id"])
    )
    expected = {
        key: (
            rows[0]["stop_name"],
            sum(r["tap_type"] == "ON" for r in rows),
            sum(r["tap_type"] == "OFF" for r in rows),
        )
        for key, rows in truth.items()
    }
    assert (
        view_rows(loaded, "daily_taps_by_stop", "service_date, stop_id, stop_name, taps_on, taps_off")
        == expected
    )


def test_daily_revenue_counts_settled_payments_less_refunds(loaded: Harness) -> None:
    truth = group(
        loaded.sandbox.ground_truth("PAYMENTS", START, END), lambda r: (r["payment_time"][:10], r["currency"])
    )

    def amounts(rows: list[Row], *statuses: str) -> Decimal:
        return cents([r["amount"] for r in rows if r["status"] in statuses]) or Decimal("0.00")

    expected = {
        key: (
            sum(r["status"] == "settled" for r in rows),
            amounts(rows, "settled"),
            amounts(rows, "refunded"),
            amounts(rows, "settled", "refunded"),
        )
        for key, rows in truth.items()
    }
    got = view_rows(
        loaded,
        "daily_revenue",
        "service_date, currency, settled_payments, gross_amount, refunded_amount, net_amount",
    )
    assert got == expected
    assert all(refunded < 0 for _, _, refunded, _ in got.values())  # refunds take money back


def test_daily_active_customers(loaded: Harness) -> None:
    truth = group(loaded.sandbox.ground_truth("TRIPS", START, END), lambda r: (r["tap_on_time"][:10],))
    expected = {
        day: len({r["customer_id"] for r in rows if r["customer_id"]}) for (day,), rows in truth.items()
    }
    rows = loaded.query("SELECT service_date, active_customers FROM daily_active_customers")
    assert {str(day): n for day, n in rows} == expected


def test_a_view_whose_table_is_not_loaded_is_skipped_with_a_reason(sandbox: Sandbox, tmp_path: Path) -> None:
    h = Harness(sandbox, tmp_path)
    h.run(report_types=["TAPS"], start_time="2025-03-01", end_time="2025-03-02")

    lines = create_views(h.pipeline())
    assert lines == [
        "views: skipped daily_trips_by_route: table trips is not loaded yet",
        "views: daily_taps_by_stop ready",
        "views: skipped daily_revenue: table payments is not loaded yet",
        "views: skipped daily_active_customers: table trips is not loaded yet",
        "views: report_freshness ready",
    ]
    assert h.query("SELECT sum(taps_on + taps_off) FROM daily_taps_by_stop") == [
        (sandbox.count_rows("TAPS", "2025-03-01T00:00:00", "2025-03-02T00:00:00"),)
    ]
    # views follow the tables: a later load shows up without making them again
    h.run(report_types=["TAPS"], start_time="2025-03-01", end_time="2025-03-03")
    assert h.query("SELECT count(DISTINCT service_date) FROM daily_taps_by_stop") == [(2,)]


def test_report_freshness_gives_each_type_the_end_of_its_last_loaded_window_and_its_age(
    loaded: Harness,
) -> None:
    before = datetime.now(ZoneInfo(loaded.sandbox.settings.timezone)).replace(tzinfo=None)
    rows = loaded.query("SELECT report_type, loaded_until, age_hours FROM report_freshness")
    after = datetime.now(ZoneInfo(loaded.sandbox.settings.timezone)).replace(tzinfo=None)

    end = datetime.fromisoformat(END)
    assert {report_type: until for report_type, until, _ in rows} == dict.fromkeys(
        ("CUSTOMERS", "PAYMENTS", "TAPS", "TRIPS"), end
    )
    for _, _, age_hours in rows:  # the age in the operator's wall-clock time, as the query ran
        assert (before - end).total_seconds() / 3600 <= age_hours <= (after - end).total_seconds() / 3600


def test_a_window_loaded_again_leaves_one_current_job_and_each_run_has_a_history_row(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The issue's trial: ``dlt pipeline tikpay drop trips`` and a rerun load the window again."""
    h = Harness(sandbox, tmp_path)
    day = {"report_types": ["TRIPS"], "start_time": "2025-03-01", "end_time": "2025-03-02"}
    first = h.run(**day)
    pipeline_drop(h.pipeline(), resources=["trips"])()  # as `dlt pipeline tikpay drop trips` does
    second = h.run(**day)
    sandbox.inject(Fault("quota_exhausted", retry_after=86_400))
    stopped = h.run(report_types=["TRIPS"], start_time="2025-03-01", end_time="2025-03-03")
    create_views(h.pipeline())

    truth = sandbox.count_rows("TRIPS", "2025-03-01T00:00:00", "2025-03-02T00:00:00")
    jobs = h.query("SELECT job_id, rows_loaded, is_current FROM report_jobs ORDER BY updated_at")
    (old, _, old_current), (new, _, new_current) = jobs
    assert [s["jobId"] for s in sandbox.jobs()] == [old, new] and (old_current, new_current) == (False, True)
    assert h.query("SELECT sum(rows_loaded) FROM report_jobs WHERE is_current") == [(truth,)]
    assert h.query("SELECT count(*) FROM trips") == [(truth,)]

    history = h.query(
        "SELECT run_id, exit_code, outcome, requests_spent, quota_left, windows_trips, rows_trips, errors"
        " FROM run_history ORDER BY _dlt_load_id"  # one load per run, in order
    )
    assert [row[1:7] for row in history] == [
        (0, "done", first.requests, first.quota_left, 1, truth),
        (0, "done", second.requests, second.quota_left, 1, truth),
        (3, "stopped for quota", stopped.requests, stopped.quota_left, 0, 0),
    ]
    assert [row[0] for row in history] == [first.run_id, second.run_id, stopped.run_id]
    assert history[0][7] is None and history[2][7].startswith("stopped (quota): ")
