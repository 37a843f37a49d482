"""Handing a checked report file from ``report_jobs`` to the resource of its table.

``report_jobs`` downloads and checks a job's file, then yields the job's row; dlt feeds
that row to every report-table transformer, and the one whose report type it names
streams the file's batches into its own table. dlt runs a transformer's generator
interleaved with its parent's, so after handing a file over ``report_jobs`` steps aside
(:meth:`FileHandover.wait` yields ``None``, which dlt skips) until the file has been
read: one report file is open at a time, and the run's steps keep their order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from dlt.extract.items import DataItemWithMeta

from tikpay_source.errors import ReadInterrupted, ReportFileError
from tikpay_source.exports import csv_file_delimiter, csv_file_items
from tikpay_source.readers import ReportFile
from tikpay_source.tables import LOADED_STATUS, tag_batch
from tikpay_source.windows import Window

# Rounds of stepping aside with no sign of the table's resource before giving up on it: dlt
# resumes the parent after one item of each other generator, so a table resource that is
# reading shows progress within a few rounds; one that never got the row shows none (and
# each empty round costs dlt's 10 ms poll).
_PATIENCE = 300


@dataclass
class _Offer:
    report: ReportFile
    window: Window
    taken: bool = False


class FileHandover:
    """Report files waiting for their table's resource, by job id."""

    def __init__(self, timezone: str) -> None:
        self._timezone = timezone  # the operator's zone, that the files' local times are read in
        self._offers: dict[str, _Offer] = {}
        self._progress = 0

    def offer(self, job_id: str, window: Window, report: ReportFile) -> None:
        """Make a checked file available to the table resource of ``window``'s report type."""
        self._offers[job_id] = _Offer(report, window)

    def stream(self, row: dict[str, Any], report_type: str) -> Iterator[pa.RecordBatch | DataItemWithMeta]:
        """The table resource's side: the file ``row`` announces, if it is ours, in the form the destination loads best.

        Into a destination that COPYs CSV files as they are (PostgreSQL), one CSV file to
        import (see :mod:`tikpay_source.exports`); anywhere else the tagged Arrow batches.
        """
        if row.get("load_status") != LOADED_STATUS or row.get("report_type") != report_type:
            return
        offer = self._offers.get(row.get("job_id") or "")
        if offer is None or offer.taken:
            return
        offer.taken = True
        self._progress += 1
        job_id = row["job_id"]
        rows = 0
        try:
            delimiter = csv_file_delimiter()
            if delimiter is not None and len(offer.report.schema):
                yield from csv_file_items(offer.report, offer.window, job_id, self._timezone, delimiter)
                return
            for batch in offer.report.batches():
                rows += batch.num_rows
                self._progress += 1
                yield tag_batch(batch, offer.window, job_id)
        except ReportFileError as exc:
            raise ReadInterrupted(
                f"{offer.window.describe()}: job {job_id}'s file failed after {rows} of its rows "
                f"were handed to dlt ({exc}); nothing of this run is loaded, the next run loads it again"
            ) from None
        finally:
            offer.report.close()
            del self._offers[job_id]
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
