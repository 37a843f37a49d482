"""How a report table's rows reach dlt: one writer per table and run, chosen from the destination's profile.

Three writers, one per way a destination takes rows (see
:mod:`tikpay_source.loading.destinations`):

- :class:`ReadyFileImport`: the file DuckDB wrote of the report as it was fetched, which the
  destination loads as it is, handed to dlt as a file to import (see :mod:`tikpay_source.loading.exports`);
- :class:`ArrowBatches`: the report's tagged Arrow batches, everywhere else;
- :class:`DeltaMerge`: numbered batches whose hints scope a Delta merge to the windows of
  the load (see :mod:`tikpay_source.loading.lake`).

**Append or replace.** Replacing a window (dlt's delete-insert on the window start) costs
a staging table and a second copy of every row; appending writes each row once. dlt
commits the connector's state with the rows it describes, so a window the committed state
never loaded has no rows in its table, except where the table was written outside that
state: a load package that loaded some tables and then lost its machine before the load
was recorded (dlt restores the state of the last *complete* load), a state reset (dlt's
``drop --state-only``), or a second pipeline writing the same dataset. So a window is
appended only when both say it is absent: the state (it never loaded a window overlapping
it) and the destination (its table holds no row of an overlapping window, asked once per
file with one query). Anything else, including a destination that cannot be asked,
replaces. Within one run a table is replaced as soon as one of its windows needs it: dlt
loads a table's files of one load package one way.

Writers are made for one run (:func:`table_writers`), so what they learn (a table being
replaced, the windows of a Delta merge) ends with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.destination.exceptions import DestinationException
from dlt.common.pipeline import current_pipeline
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from tikpay_source.errors import caused_by_interrupt
from tikpay_source.files.readers import ReportFile
from tikpay_source.loading.destinations import DestinationProfile
from tikpay_source.loading.exports import ReadyFiles, ready_file_items
from tikpay_source.loading.lake import report_delta_hints
from tikpay_source.loading.tables import REPORT_HINTS, tag_batch
from tikpay_source.planning.windows import Window
from tikpay_source.progress import log
from tikpay_source.settings import REPORT_TABLES, ROW_NUMBER_COLUMN, WINDOW_END_COLUMN, WINDOW_START_COLUMN

APPEND = "append"
REPLACE = REPORT_HINTS["write_disposition"]


@dataclass
class HandedFile:
    """A checked report file handed to its table's resource, with what the state knew of its window."""

    job_id: str
    report: ReportFile
    window: Window
    state_loaded_it: bool
    """The committed state loaded a window overlapping this one (its rows may be in the table)."""
    files: ReadyFiles | None = None
    """The files DuckDB wrote of it for the destination, if it loads such files as they are."""
    taken: bool = False

    def close(self) -> None:
        try:
            self.report.close()
        finally:
            if self.files is not None:
                self.files.close()


class TableWriter:
    """Writes the files of one report table during one run; see the module's docstring."""

    def __init__(self, table: str) -> None:
        self.table = table

    def write(self, handed: HandedFile) -> Iterator[Any]:
        """The items that hand ``handed``'s rows to dlt (files to import, or Arrow batches)."""
        raise NotImplementedError


class ArrowBatches(TableWriter):
    """The report's batches tagged with their job and window; the first one carries the disposition.

    A table's windows are appended until one of them may be there already (see the module's
    docstring); from then on, for the rest of the run, they replace.
    """

    def __init__(self, table: str, asks_presence: bool) -> None:
        super().__init__(table)
        self._asks_presence = asks_presence
        self.replacing = False

    def disposition(self, window: Window, state_loaded_it: bool) -> Any:
        """dlt's write disposition for the table, now that ``window``'s file is next."""
        if not self.replacing and (
            state_loaded_it or not self._asks_presence or destination_may_hold(self.table, window)
        ):
            self.replacing = True
            if not state_loaded_it and self._asks_presence:
                log.info(
                    "%s: table %s already holds rows of this window that this pipeline's state never "
                    "loaded (a state reset, another pipeline, or a load lost with its machine); "
                    "this run replaces the rows of its windows there instead of appending them",
                    window.describe(),
                    self.table,
                )
        return REPLACE if self.replacing else APPEND

    def write(self, handed: HandedFile) -> Iterator[Any]:
        hints = dlt.mark.make_hints(write_disposition=self.disposition(handed.window, handed.state_loaded_it))
        for number, batch in enumerate(handed.report.batches()):
            tagged = tag_batch(batch, handed.window, handed.job_id)
            yield dlt.mark.with_hints(tagged, hints) if number == 0 else tagged


class ReadyFileImport(ArrowBatches):
    """The files DuckDB wrote of the report when it was fetched, which the destination loads as they are."""

    def __init__(self, table: str, asks_presence: bool, timezone: str) -> None:
        super().__init__(table, asks_presence)
        self._timezone = timezone

    def write(self, handed: HandedFile) -> Iterator[Any]:
        if handed.files is None:  # a file with no columns at all: nothing for DuckDB to write
            yield from super().write(handed)
            return
        disposition = self.disposition(handed.window, handed.state_loaded_it)
        yield from ready_file_items(handed.report, handed.files, self._timezone, disposition)


class DeltaMerge(TableWriter):
    """Numbered batches; each window's first one widens the hints' scope to the run's windows so far.

    dlt applies hints yielded with an item to the table's schema, which the load package
    keeps, so the package's merge knows every window it holds.
    """

    def __init__(self, table: str) -> None:
        super().__init__(table)
        self._starts: list[datetime] = []

    def write(self, handed: HandedFile) -> Iterator[Any]:
        offset = 0
        for batch in handed.report.batches():
            tagged = tag_batch(batch, handed.window, handed.job_id)
            numbered = tagged.append_column(
                pa.field(ROW_NUMBER_COLUMN, pa.int64(), nullable=False),
                pa.array(range(offset, offset + batch.num_rows), pa.int64()),
            )
            if offset == 0:  # a window is in the scope only once its rows are in the load
                self._starts.append(handed.window.start)
                yield dlt.mark.with_hints(numbered, report_delta_hints(self._starts))
            else:
                yield numbered
            offset += batch.num_rows


def table_writers(
    profile: DestinationProfile, timezone: str, report_types: Iterable[str]
) -> dict[str, TableWriter]:
    """A fresh writer per report type for one run into the destination of ``profile``."""
    writers: dict[str, TableWriter] = {}
    for report_type in report_types:
        table = REPORT_TABLES[report_type]
        if profile.delta:
            writers[report_type] = DeltaMerge(table)
        elif profile.table_file is not None:
            writers[report_type] = ReadyFileImport(table, profile.asks_presence, timezone)
        else:
            writers[report_type] = ArrowBatches(table, profile.asks_presence)
    return writers


def destination_may_hold(table: str, window: Window) -> bool:
    """Whether the destination's ``table`` may hold rows of a window overlapping ``window``.

    True unless the destination answers that it holds none (or has no such table yet).
    """
    pipeline = current_pipeline()
    if pipeline is None or getattr(pipeline, "destination", None) is None:
        return True
    naming = dlt.current.source_schema().naming
    try:
        with pipeline.sql_client() as client:
            name = client.make_qualified_table_name(naming.normalize_table_identifier(table))
            start, end = (
                client.escape_column_name(naming.normalize_identifier(column))
                for column in (WINDOW_START_COLUMN, WINDOW_END_COLUMN)
            )
            sql = f"SELECT 1 FROM {name} WHERE {start} < %s AND {end} > %s LIMIT 1"
            return bool(client.execute_sql(sql, window.end, window.start))
    except DatabaseUndefinedRelation:
        return False
    except (DestinationException, OSError) as exc:  # any doubt replaces, which is always correct
        if caused_by_interrupt(exc):
            raise  # Ctrl-C (or SIGTERM) reached the query: the run stops, as it would anywhere
        log.info("%s: could not ask the destination (%s); replacing", table, type(exc).__name__)
        return True
