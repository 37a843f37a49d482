"""Widening a loaded column in the warehouse, keeping every value's text exactly.

dlt never changes the type of a column it has created, so a file whose values do not
fit a column (text in a column first loaded as integers) would be refused for ever. The
connector widens the column itself, with one ``ALTER TABLE … ALTER COLUMN … TYPE … USING``
through the pipeline's own SQL client, during the extract (so before dlt loads the rows
that need it), and records the new type in dlt's schema, which dlt then saves with the
load. Widening only ever goes up (integer → decimal → text; anything → text), so a crash
after the ``ALTER`` leaves a column that still holds every value.

"Exactly" means the text in the file: a timestamp becomes the local wall-clock text in
the column's recorded format (not a UTC rendering), a date its format, a boolean its
recorded case, a decimal its digits at the column's scale (which is every value's own
scale, see :mod:`tikpay_source.columns.types`).

Which destinations widen, in which SQL, is their profile's word
(:mod:`tikpay_source.loading.destinations`): DuckDB, MotherDuck and PostgreSQL do; on
``filesystem`` each Parquet file keeps the types it was written with. Anywhere else (a Delta
table has one schema too) :class:`~tikpay_source.errors.WideningRefused` names the column to
alter by hand (see docs/warehouses.md): the window keeps its job and is loaded once it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tikpay_source.columns.types import BOOL, BOOL_STYLES, DATE, DECIMAL, TEXT, TIMESTAMP, ColumnType
from tikpay_source.errors import WideningRefused
from tikpay_source.loading.destinations import POSTGRES_SQL, DestinationProfile
from tikpay_source.loading.views import VIEWS

Change = tuple[str, ColumnType, ColumnType]
"""A column to widen: its name, its type now, the type it widens to."""

_POSTGRES_FORMAT = {
    "%Y": "YYYY",
    "%m": "MM",
    "%d": "DD",
    "%H": "HH24",
    "%M": "MI",
    "%S": "SS",
    "%g": "MS",
    "%f": "US",
}


def widen_columns(
    pipeline: Any, profile: DestinationProfile, table: str, changes: Sequence[Change], zone: str
) -> None:
    """Alter ``changes`` in the destination table; raises :class:`WideningRefused` where it cannot."""
    if profile.files_keep_types or not changes:
        return
    if profile.widening_sql is None:
        name, before, after = changes[0]
        raise WideningRefused(
            f"column {table}.{name} must widen from {before.describe()} to {after.describe()}, which the "
            f"connector does not do on {profile.describe()}; alter the column by hand (see docs/warehouses.md)"
        )
    postgres = profile.widening_sql == POSTGRES_SQL
    with pipeline.sql_client() as client:
        qualified = client.make_qualified_table_name(table)
        with client.begin_transaction():
            if postgres:  # PostgreSQL refuses to alter a column a view reads; the script recreates them
                for view in VIEWS:
                    client.execute_sql(f"DROP VIEW IF EXISTS {client.make_qualified_table_name(view.name)}")
            for name, before, after in changes:
                column = client.escape_column_name(name)
                target = _sql_type(after, postgres)
                using = _converted(column, before, after, zone, postgres)
                client.execute_sql(
                    f"ALTER TABLE {qualified} ALTER COLUMN {column} TYPE {target} USING {using}"
                )
        with (
            client.with_staging_dataset()
        ):  # the merge's staging copy is emptied by every load: dlt recreates it
            client.execute_sql(f"DROP TABLE IF EXISTS {client.make_qualified_table_name(table)}")


def _sql_type(kind: ColumnType, postgres: bool) -> str:
    if kind.kind == DECIMAL:
        return f"{'numeric' if postgres else 'DECIMAL'}({kind.precision}, {kind.scale})"
    if kind.kind == TEXT:
        return "text" if postgres else "VARCHAR"
    return "bigint" if postgres else "BIGINT"


def _converted(column: str, before: ColumnType, after: ColumnType, zone: str, postgres: bool) -> str:
    """The SQL giving each loaded value in the new type, as the file wrote it."""
    target = _sql_type(after, postgres)
    if after.kind != TEXT:
        return f"CAST({column} AS {target})"
    if before.kind == BOOL:
        true, false = BOOL_STYLES[before.fmt or "lower"]
        return f"CASE WHEN {column} THEN '{true}' WHEN NOT {column} THEN '{false}' END"
    if before.kind in (DATE, TIMESTAMP):
        local = column
        if before.kind == TIMESTAMP:
            local = f"({column} AT TIME ZONE '{zone}')" if postgres else f"timezone('{zone}', {column})"
        fmt = _postgres_format(before.fmt or "") if postgres else before.fmt
        return f"to_char({local}, '{fmt}')" if postgres else f"strftime({local}, '{fmt}')"
    return f"CAST({column} AS {target})"


def _postgres_format(fmt: str) -> str:
    """A strftime format as PostgreSQL's ``to_char`` template (letters other than codes quoted)."""
    out, i = [], 0
    while i < len(fmt):
        code = fmt[i : i + 2]
        if code in _POSTGRES_FORMAT:
            out.append(_POSTGRES_FORMAT[code])
            i += 2
            continue
        out.append(f'"{fmt[i]}"' if fmt[i].isalpha() else fmt[i])
        i += 1
    return "".join(out)
