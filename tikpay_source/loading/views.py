"""SQL views for BI, created in the dataset after each load: what analysts ask for first.

| view | one row per | columns |
| --- | --- | --- |
| ``daily_trips_by_route`` | local day, route | ``service_date``, ``route_id``, ``route_name``, ``mode``, ``trips``, ``fare_amount`` |
| ``daily_taps_by_stop`` | local day, stop | ``service_date``, ``stop_id``, ``stop_name``, ``taps_on``, ``taps_off`` |
| ``daily_revenue`` | local day, currency | ``service_date``, ``currency``, ``settled_payments``, ``gross_amount``, ``refunded_amount``, ``net_amount`` |
| ``daily_active_customers`` | local day | ``service_date``, ``active_customers`` (registered customers who travelled) |
| ``report_freshness`` | report type | ``report_type``, ``loaded_until`` (end of the last loaded window, local), ``age``, ``age_hours`` (wall-clock time now less ``loaded_until``: an hour off across a daylight-saving change) |

"Daily" is the operator's local date: the report times are stored as instants, so each
view turns them back into the wall-clock date of the zone the API reported in
``report_jobs.timezone``. Views rather than tables, so they are never stale and cost
nothing to keep: the report tables stay the single copy of the data.

The SQL is one text for DuckDB (MotherDuck) and PostgreSQL; other destinations, and the
``filesystem`` destination, which has no engine to keep a view, get a log line instead
(on a lake, :func:`lake_queries` gives the same SELECTs to run over its Delta tables).
A view whose table or column has not been loaded (report types not requested, a column
the export dropped) is skipped with a line saying what is missing; the others are made.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dlt.common.destination.exceptions import DestinationException

from tikpay_source.loading.destinations import PROFILES, profile_of
from tikpay_source.loading.tables import ROWS_IN_TABLE
from tikpay_source.progress import log
from tikpay_source.settings import JOBS_TABLE

TIME = ("timestamp",)
LOCAL_TIME = ("local timestamp",)  # a timestamp without time zone: the operator's wall-clock time
_LOADED = "(" + ", ".join(f"'{status}'" for status in ROWS_IN_TABLE) + ")"  # as SQL
NUMBER = ("double", "decimal", "bigint")
ANY = ("text", "bigint", "double", "decimal")


@dataclass(frozen=True)
class View:
    """A view, the columns (with acceptable dlt types) it reads, and its SELECT.

    ``select`` uses ``{table}`` placeholders for qualified table names and
    ``{day:column}`` for a column's local date. Amounts are summed as exact cents
    (DECIMAL(18, 2)) whatever their column loaded as: a decimal of the file's own scale, or a
    double in tables an earlier version loaded, whose sums would show float noise.
    """

    name: str
    needs: dict[str, dict[str, tuple[str, ...]]]
    select: str


VIEWS: tuple[View, ...] = (
    View(
        "daily_trips_by_route",
        {
            "trips": {
                "tap_on_time": TIME,
                "route_id": ANY,
                "route_name": ANY,
                "mode": ANY,
                "fare_amount": NUMBER,
            }
        },
        "SELECT {day:tap_on_time} AS service_date, route_id, route_name, mode,"
        " COUNT(*) AS trips, CAST(SUM(fare_amount) AS DECIMAL(18, 2)) AS fare_amount"
        " FROM {trips} GROUP BY 1, 2, 3, 4",
    ),
    View(
        "daily_taps_by_stop",
        {"taps": {"tap_time": TIME, "stop_id": ANY, "stop_name": ANY, "tap_type": ("text",)}},
        "SELECT {day:tap_time} AS service_date, stop_id, stop_name,"
        " SUM(CASE WHEN tap_type = 'ON' THEN 1 ELSE 0 END) AS taps_on,"
        " SUM(CASE WHEN tap_type = 'OFF' THEN 1 ELSE 0 END) AS taps_off"
        " FROM {taps} GROUP BY 1, 2, 3",
    ),
    View(
        "daily_revenue",
        # settled payments are revenue and refunds (negative amounts) take it back;
        # declined and pending payments moved no money
        {"payments": {"payment_time": TIME, "currency": ("text",), "status": ("text",), "amount": NUMBER}},
        "SELECT {day:payment_time} AS service_date, currency,"
        " SUM(CASE WHEN status = 'settled' THEN 1 ELSE 0 END) AS settled_payments,"
        " CAST(SUM(CASE WHEN status = 'settled' THEN amount ELSE 0 END) AS DECIMAL(18, 2)) AS gross_amount,"
        " CAST(SUM(CASE WHEN status = 'refunded' THEN amount ELSE 0 END) AS DECIMAL(18, 2)) AS refunded_amount,"
        " CAST(SUM(CASE WHEN status IN ('settled', 'refunded') THEN amount ELSE 0 END) AS DECIMAL(18, 2)) AS net_amount"
        " FROM {payments} GROUP BY 1, 2",
    ),
    View(
        "daily_active_customers",
        {"trips": {"tap_on_time": TIME, "customer_id": ANY}},
        "SELECT {day:tap_on_time} AS service_date, COUNT(DISTINCT customer_id) AS active_customers"
        " FROM {trips} WHERE customer_id IS NOT NULL GROUP BY 1",
    ),
    View(
        "report_freshness",
        {"report_jobs": {"report_type": ("text",), "window_end": LOCAL_TIME, "load_status": ("text",)}},
        "SELECT report_type, MAX(window_end) AS loaded_until, {now} - MAX(window_end) AS age,"
        " CAST(EXTRACT(EPOCH FROM ({now} - MAX(window_end))) / 3600 AS DOUBLE PRECISION) AS age_hours"
        f" FROM {{report_jobs}} WHERE load_status IN {_LOADED} GROUP BY 1",
    ),
)


def local_date(column: str, zone: str) -> str:
    """SQL for the operator's local date of a timestamp-with-time-zone column (DuckDB and PostgreSQL)."""
    return f"CAST(({column} AT TIME ZONE '{zone}') AS DATE)"


def missing(view: View, tables: dict[str, dict[str, Any]]) -> str | None:
    """What ``view`` needs that the dataset's dlt schema lacks, or None when it can be made."""
    for table, columns in view.needs.items():
        if table not in tables or not tables[table].get("columns"):
            return f"table {table} is not loaded yet"
        have = tables[table]["columns"]
        for column, types in columns.items():
            if column not in have:
                return f"{table} has no column {column}"
            if types == LOCAL_TIME:
                if have[column].get("data_type") != "timestamp" or have[column].get("timezone") is not False:
                    return f"{table}.{column} is not a timestamp without time zone"
                continue
            if have[column].get("data_type") not in types:
                return f"{table}.{column} is {have[column].get('data_type')}, not {' or '.join(types)}"
            if types == TIME and have[column].get("timezone") is False:
                # AT TIME ZONE would shift a naive time the wrong way
                return f"{table}.{column} is a timestamp without time zone"
    return None


def render(view: View, zone: str, qualify: Any) -> str:
    """The view's SELECT with qualified table names and local dates filled in."""
    sql = view.select.replace("{now}", f"CAST((now() AT TIME ZONE '{zone}') AS TIMESTAMP)")
    for column in {c for columns in view.needs.values() for c in columns}:
        sql = sql.replace("{day:" + column + "}", local_date(column, zone))
    for table in view.needs:
        sql = sql.replace("{" + table + "}", qualify(table))
    return sql


def lake_queries(zone: str) -> dict[str, str]:
    """Each view's SELECT over unqualified table names, for an engine reading a lake's tables.

    The ``filesystem`` destination has no engine to keep a view; DuckDB over the Delta
    tables (``deltalake``'s Arrow datasets registered under the table names, see
    docs/warehouses.md) runs these and gets the warehouses' daily figures.
    """
    return {view.name: render(view, zone, str) for view in VIEWS}


def operator_zone(client: Any) -> str | None:
    """The zone the API reported for the latest job; validated, as it is spliced into SQL."""
    rows = client.execute_sql(
        f"SELECT timezone FROM {client.make_qualified_table_name(JOBS_TABLE)}"
        " WHERE timezone IS NOT NULL ORDER BY updated_at DESC LIMIT 1"
    )
    if not rows:
        return None
    zone = str(rows[0][0])
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return zone if "'" not in zone else None


# a job's row is current unless a later load of its report type covers its whole span; only rows
# whose mark changes are written (an UPDATE of every row would rewrite the table on each run)
_CURRENT = (
    f"(job.load_status IN {_LOADED} AND NOT EXISTS ("
    "SELECT 1 FROM {jobs} AS later WHERE later.report_type = job.report_type"
    f" AND later.load_status IN {_LOADED} AND later.updated_at > job.updated_at"
    " AND later.window_start <= job.window_start AND later.window_end >= job.window_end))"
)
MARK_CURRENT_JOBS = (
    f"UPDATE {{jobs}} AS job SET is_current = {_CURRENT} WHERE job.is_current IS DISTINCT FROM {_CURRENT}"
)


def rows_in_all(pipeline: Any, tables: Iterable[str]) -> dict[str, int]:
    """How many rows each of ``tables`` holds now; empty where the destination cannot be asked by SQL."""
    if not profile_of(pipeline.destination).views:
        return {}
    try:
        with pipeline.sql_client() as client:
            return {
                table: int(
                    client.execute_sql(f"SELECT count(*) FROM {client.make_qualified_table_name(table)}")[0][
                        0
                    ]
                )
                for table in tables
            }
    except (DestinationException, OSError) as exc:  # the counts are a courtesy: the load is committed
        log.info("could not count the tables' rows (%s)", type(exc).__name__)
        return {}


def create_views(pipeline: Any) -> list[str]:
    """(Re)create every view the loaded tables allow; returns one log line per view or skip.

    First ``report_jobs.is_current`` is brought up to date: a job whose whole span a later
    loaded job of its type covers (its table dropped and loaded anew, say) is no longer
    current, so summing ``rows_loaded`` over current rows counts every row once. (On a lake,
    where tables are files, no ``UPDATE`` runs: every loaded job stays marked current.) A
    failure there is a line, like a view's, and the views are still made.

    Views are dropped and created again (not ``CREATE OR REPLACE``) because PostgreSQL
    refuses to replace a view whose columns changed type, which a new export column can do.
    """
    profile = profile_of(pipeline.destination)
    if not profile.views:
        written_for = ", ".join(listed.name for listed in PROFILES.values() if listed.views)
        return [
            f"views: not created on {profile.name}: they are SQL for {written_for}; "
            "see tikpay_source/loading/views.py for the queries"
        ]
    tables = pipeline.default_schema.tables
    if JOBS_TABLE not in tables:
        return ["views: not created: nothing has been loaded yet"]
    lines: list[str] = []
    with pipeline.sql_client() as client:
        if not profile.lake and "is_current" in tables[JOBS_TABLE].get("columns", {}):
            try:
                client.execute_sql(
                    MARK_CURRENT_JOBS.format(jobs=client.make_qualified_table_name(JOBS_TABLE))
                )
            except DestinationException as exc:  # the load is committed; the views can still be made
                lines.append(f"report_jobs.is_current: not brought up to date: {type(exc).__name__}")
        zone = operator_zone(client)
        if zone is None:
            return ["views: not created: report_jobs names no valid operator timezone yet"]
        for view in VIEWS:
            reason = missing(view, tables)
            if reason:
                lines.append(f"views: skipped {view.name}: {reason}")
                continue
            name = client.make_qualified_table_name(view.name)
            with client.begin_transaction():
                client.execute_sql(f"DROP VIEW IF EXISTS {name}")
                client.execute_sql(
                    f"CREATE VIEW {name} AS {render(view, zone, client.make_qualified_table_name)}"
                )
            lines.append(f"views: {view.name} ready")
    return lines
