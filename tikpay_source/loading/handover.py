"""Handing a checked report file from ``report_jobs`` to the resource of its table.

``report_jobs`` downloads and checks a job's file, then yields the job's row; dlt feeds
that row to every report-table transformer, and the one whose report type it names
claims the file and hands its rows to its own table (files to import, or Arrow
batches). dlt runs a transformer's generator interleaved with its parent's, so after
handing a file over ``report_jobs`` steps aside
(:meth:`FileHandover.wait` yields ``None``, which dlt skips) until the file has been
read: one report file is open at a time, and the run's steps keep their order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dlt
import pyarrow as pa
from dlt.extract.items import DataItemWithMeta

from tikpay_source.errors import ReadInterrupted, ReportFileError
from tikpay_source.files.readers import ReportFile
from tikpay_source.loading.exports import ready_file, ready_file_items
from tikpay_source.loading.tables import LOADED_STATUS, tag_batch
from tikpay_source.planning.windows import Window

# Rounds of stepping aside with no sign of the table's resource before giving up on it: dlt
# resumes the parent after one item of each other generator, so a table resource that is
# reading shows progress within a few rounds; one that never got the row shows none (and
# each empty round costs dlt's 10 ms poll).
_PATIENCE = 300


@dataclass
class HandedFile:
    """A checked report file handed to its table's resource, with what the state knew of its window."""

    job_id: str
    report: ReportFile
    window: Window
    state_loaded_it: bool
    """The committed state loaded a window overlapping this one (its rows may be in the table)."""
    taken: bool = False


class FileHandover:
    """Report files waiting for their table's resource, by job id."""

    def __init__(self, timezone: str) -> None:
        self._timezone = timezone  # the operator's zone, that the files' local times are read in
        self._offers: dict[str, HandedFile] = {}
        self._progress = 0

    def offer(self, job_id: str, window: Window, report: ReportFile, *, state_loaded_it: bool) -> None:
        """Make a checked file available to the table resource of ``window``'s report type."""
        self._offers[job_id] = HandedFile(job_id, report, window, state_loaded_it)

    def claim(self, row: dict[str, Any], report_type: str) -> HandedFile | None:
        """The table resource's side: the file ``row`` announces, if it is of ``report_type``."""
        if row.get("load_status") != LOADED_STATUS or row.get("report_type") != report_type:
            return None
        handed = self._offers.get(row.get("job_id") or "")
        if handed is None or handed.taken:
            return None
        handed.taken = True
        self._progress += 1
        return handed

    def stream(
        self, handed: HandedFile, write_disposition: Any = None
    ) -> Iterator[pa.RecordBatch | DataItemWithMeta]:
        """A claimed file's rows in the form the destination loads best, then the file is released.

        Into a destination that loads a file as it is (Parquet into DuckDB and MotherDuck, CSV
        into PostgreSQL), its files to import (see :mod:`tikpay_source.loading.exports`); anywhere else
        the tagged Arrow batches.
        ``write_disposition``, if given, goes to dlt with every file, or with the first batch.
        """
        hints = dlt.mark.make_hints(write_disposition=write_disposition) if write_disposition else None
        rows = 0
        try:
            ready = ready_file()
            if ready is not None and len(handed.report.schema):
                yield from ready_file_items(
                    handed.report, handed.window, handed.job_id, self._timezone, ready, write_disposition
                )
                return
            for batch in handed.report.batches():
                self._progress += 1
                tagged = tag_batch(batch, handed.window, handed.job_id)
                yield dlt.mark.with_hints(tagged, hints) if hints and not rows else tagged
                rows += batch.num_rows
        except ReportFileError as exc:
            raise ReadInterrupted(
                f"{handed.window.describe()}: job {handed.job_id}'s file failed after {rows} of its rows "
                f"were handed to dlt ({exc}); nothing of this run is loaded, the next run loads it again"
            ) from None
        finally:
            handed.report.close()
            del self._offers[handed.job_id]
            self._progress += 1

    def wait(self) -> Iterator[None]:
        """The parent's side: step aside until every file handed over has been read."""
        idle, seen = 0, self._progress
        while self._offers:
            if self._progress != seen:
                idle, seen = 0, self._progress
            idle += 1
            if idle > _PATIENCE:
                job_id, offer = next(iter(self._offers.items()))
                raise ReadInterrupted(  # the window is marked loaded: the extract must not commit
                    f"{offer.window.describe()}: no selected resource read job {job_id}'s file; "
                    "was a filter added to report_jobs? Nothing of this run is loaded"
                )
            yield None

    def close(self) -> None:
        """Release every file not read (a run that stopped early)."""
        for offer in self._offers.values():
            offer.report.close()
        self._offers.clear()
