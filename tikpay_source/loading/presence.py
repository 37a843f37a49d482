"""Append a window's rows where nothing can be in their way; replace them where something may be.

Replacing a window (dlt's delete-insert on the window start) costs a staging table and a
second copy of every row; appending writes each row once. dlt commits the connector's
state with the rows it describes, so a window the committed state never loaded has no
rows in its table, except where the table was written outside that state:

* a load package that loaded some tables and then lost its machine before the load was
  recorded (dlt restores the state of the last *complete* load, so the window looks new);
* a state reset (dlt's ``drop --state-only``, a deleted pipeline directory with its
  state's rows dropped too);
* a second pipeline writing the same dataset.

So a window is appended only when both say it is absent: the state (it never loaded a
window overlapping it) and the destination (its table holds no row of an overlapping
window, asked once per file with one query). Anything else, including a destination that
cannot be asked, replaces. Within one run a table is replaced as soon as one of its
windows needs it: dlt loads a table's files of one load package one way.
"""

from __future__ import annotations

from typing import Any

import dlt
from dlt.common.destination.exceptions import DestinationException
from dlt.common.pipeline import current_pipeline
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from tikpay_source.errors import caused_by_interrupt
from tikpay_source.loading.tables import REPORT_HINTS
from tikpay_source.planning.windows import Window
from tikpay_source.progress import log
from tikpay_source.settings import PROBED_DESTINATIONS, WINDOW_END_COLUMN, WINDOW_START_COLUMN

APPEND = "append"
REPLACE = REPORT_HINTS["write_disposition"]


class TableWrites:
    """How one report table's rows go in during one run: appended until a window may be there already."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.replacing = False

    def disposition(self, window: Window, state_loaded_it: bool) -> Any:
        """dlt's write disposition for the table, now that ``window``'s file is next.

        ``state_loaded_it`` is the committed state's word: it loaded a window overlapping this one.
        """
        if not self.replacing and (state_loaded_it or _destination_may_hold(self.table, window)):
            self.replacing = True
            if not state_loaded_it:
                log.info(
                    "%s: table %s already holds rows of this window that this pipeline's state never "
                    "loaded (a state reset, another pipeline, or a load lost with its machine); "
                    "this run replaces the rows of its windows there instead of appending them",
                    window.describe(),
                    self.table,
                )
        return REPLACE if self.replacing else APPEND


def _destination_may_hold(table: str, window: Window) -> bool:
    """Whether the destination's ``table`` may hold rows of a window overlapping ``window``.

    True unless the destination answers that it holds none (or has no such table yet).
    """
    pipeline = current_pipeline()
    destination = getattr(pipeline, "destination", None)
    if pipeline is None or destination is None or destination.destination_type not in PROBED_DESTINATIONS:
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
