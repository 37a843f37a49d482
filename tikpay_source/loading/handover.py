"""Handing a checked report file from ``report_jobs`` to the resource of its table.

``report_jobs`` downloads and checks a job's file, then yields the job's row; dlt feeds
that row to every report-table transformer, and the one whose report type it names
claims the file and hands its rows to its own table through this run's writer for
it (see :mod:`tikpay_source.loading.writers`). dlt runs a transformer's generator interleaved with its parent's, so after
handing a file over ``report_jobs`` steps aside
(:meth:`FileHandover.wait` yields ``None``, which dlt skips) until the file has been
read: one report file is open at a time, and the run's steps keep their order.
``run_history`` waits the same way for the run to finish (:meth:`FileHandover.take_finished_run`)
before it reads the run's outcome.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa
from dlt.extract.items import DataItemWithMeta

from tikpay_source.errors import ReadInterrupted, ReportFileError
from tikpay_source.loading.tables import LOADED_STATUS
from tikpay_source.loading.writers import HandedFile, TableWriter

# Rounds of stepping aside with no sign of the table's resource before giving up on it: dlt
# resumes the parent after one item of each other generator, so a table resource that is
# reading shows progress within a few rounds; one that never got the row shows none (and
# each empty round costs dlt's 10 ms poll).
_PATIENCE = 300


class FileHandover:
    """Report files waiting for their table's resource, by job id."""

    def __init__(self) -> None:
        self._offers: dict[str, HandedFile] = {}
        self._writers: Mapping[str, TableWriter] = {}
        self._progress = 0
        self._finished_run: str | None = None

    def start_run(self, writers: Mapping[str, TableWriter]) -> None:
        """A run begins: its files go to these writers, by report type (made for this run alone)."""
        self.close()
        self._writers = writers

    def finish_run(self, run_id: str) -> None:
        """``report_jobs`` is done with run ``run_id``: ``run_history`` may read its outcome."""
        self._finished_run = run_id

    def take_finished_run(self) -> str | None:
        """The id of the run ``report_jobs`` finished, once (None until it has)."""
        finished, self._finished_run = self._finished_run, None
        return finished

    def offer(self, handed: HandedFile) -> None:
        """Make a checked file available to the table resource of its window's report type."""
        self._offers[handed.job_id] = handed

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

    def stream(self, handed: HandedFile) -> Iterator[pa.RecordBatch | DataItemWithMeta]:
        """A claimed file's rows as this run's writer for its table hands them to dlt; then it is released."""
        rows = 0
        try:
            writer = self._writers[handed.window.report_type]
            for item in writer.write(handed):
                self._progress += 1
                yield item
                rows += _rows_in(item)
        except ReportFileError as exc:
            raise ReadInterrupted(
                f"{handed.window.describe()}: job {handed.job_id}'s file failed after {rows} of its rows "
                f"were handed to dlt ({exc}); nothing of this run is loaded, the next run loads it again"
            ) from None
        finally:
            handed.close()
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
            offer.close()
        self._offers.clear()


def _rows_in(item: Any) -> int:
    """The rows an item hands to dlt as a batch (a file to import is counted by dlt itself)."""
    data = item.data if isinstance(item, DataItemWithMeta) else item
    return data.num_rows if isinstance(data, pa.RecordBatch) else 0
