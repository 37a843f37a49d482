"""The type each report column has in its table, remembered across files and widened when needed.

A column keeps its type from file to file: every later file is read with it, so
``route_id`` values such as ``333`` stay text once the column is text. A file whose
values need more (text where the column holds integers) widens the column in the
warehouse (:mod:`tikpay_source.columns.widening`) before its rows are handed to dlt, where the
destination can; where it cannot, the window keeps its job until the column is altered by hand. Earlier loads are known from the schema dlt keeps, as it
was when this run first looked; this run's files are remembered as they are read.

One case waits: a column whose rows of *this* run were extracted with the narrower
type (they are not in the warehouse yet, so there is nothing to alter). That file's
window stays complete and is loaded by the next run, against the widened column.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import dlt

from tikpay_source.columns.types import ColumnType, from_schema
from tikpay_source.columns.widening import widen_columns
from tikpay_source.errors import WidenNextRun
from tikpay_source.files.readers import ReportFile
from tikpay_source.loading.destinations import DestinationProfile
from tikpay_source.settings import FORMAT_HINT, REPORT_TABLES

_TYPE_HINTS = ("data_type", "precision", "scale", FORMAT_HINT)


class ColumnTypeMemory:
    """Column types per report table: as loaded before this run, and as this run's files made them."""

    def __init__(self, zone: str, profile: DestinationProfile) -> None:
        self._zone = zone
        self._profile = profile  # how the destination widens a column, if it does
        self._before: dict[str, dict[str, Any]] = {}
        self._this_run: dict[str, dict[str, ColumnType]] = {}

    def lookup(self, report_type: str) -> Callable[[str], ColumnType | None]:
        """A function from a column's warehouse name to the type its table already has, if any."""
        table = REPORT_TABLES[report_type]
        before = self._loaded_before(table)
        this_run = self._this_run.get(table, {})

        def loaded_type(name: str) -> ColumnType | None:
            return this_run.get(name) or from_schema(before.get(name, {}))

        return loaded_type

    def adopt(self, report_type: str, report: ReportFile) -> None:
        """Widen the columns this report needs wider, then remember its types.

        Raises :class:`WidenNextRun` (this run's rows have the narrower type) or
        :class:`WideningRefused` (the destination cannot widen it).
        """
        table = REPORT_TABLES[report_type]
        this_run = self._this_run.setdefault(table, {})
        changes = [
            (c.name, c.loaded, c.kind) for c in report.columns if c.loaded and c.kind and c.kind != c.loaded
        ]
        waiting = [name for name, _, _ in changes if name in this_run]
        if waiting:
            raise WidenNextRun(
                f"column {table}.{waiting[0]} must widen, and rows of this run already have its "
                "narrower type; the window is loaded by the next run"
            )
        widen_columns(dlt.current.pipeline(), self._profile, table, changes, self._zone)
        columns = dlt.current.source_schema().tables.get(table, {}).get("columns", {})
        for name, _before, after in changes:
            self._record(columns.get(name), after)
        for column in report.columns:
            if column.kind and (column.values or column.loaded):
                this_run[column.name] = column.kind

    def loaded(self, report_type: str, report: ReportFile) -> None:
        """Write the text format of the columns dlt created from this report into its schema."""
        columns = dlt.current.source_schema().tables.get(REPORT_TABLES[report_type], {}).get("columns", {})
        for column in report.columns:
            if column.kind and column.values and column.kind.fmt:
                self._record(columns.get(column.name), column.kind)

    def _loaded_before(self, table: str) -> dict[str, Any]:
        if table not in self._before:
            schema = dlt.current.source_schema()
            self._before[table] = copy.deepcopy(schema.tables.get(table, {}).get("columns", {}))
        return self._before[table]

    @staticmethod
    def _record(column: dict[str, Any] | None, kind: ColumnType) -> None:
        if column is None:
            return
        for hint in _TYPE_HINTS:
            column.pop(hint, None)
        column.update(kind.hints())
