"""A dlt source for the Tikpay Data API: report jobs over incremental windows, loaded exactly once.

The source has five resources: ``report_jobs`` plans, submits and tracks the jobs (and
loads their metadata), and ``customers``, ``payments``, ``taps`` and ``trips`` each load
the rows of their report type from the files of those jobs. Selecting resources selects
report types::

    import dlt
    from tikpay_source import tikpay

    pipeline = dlt.pipeline("tikpay", destination="duckdb", dataset_name="tikpay_data")
    pipeline.run(tikpay().with_resources("report_jobs", "trips"))  # TRIPS alone

Building the source only validates its configuration; every request is made while the
resources are iterated, so orchestrators can build it when they load code.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.exceptions import DltException
from dlt.extract.items import DataItemWithMeta
from dlt.sources import DltResource

from tikpay_source.config import OPTIONS, TikpayConfig, build_config
from tikpay_source.errors import (
    ApiError,
    AuthError,
    ConfigError,
    QuotaExhausted,
    ReadInterrupted,
    ReportFileError,
    TikpayError,
)
from tikpay_source.loading.handover import FileHandover
from tikpay_source.loading.lake import DeltaWindows, one_row_per_job, use_delta_for_jobs, uses_delta
from tikpay_source.loading.presence import TableWrites
from tikpay_source.loading.tables import JOB_HINTS, REPORT_HINTS, selected_report_types
from tikpay_source.outcome import RunSummary, run_summary
from tikpay_source.planning.budget import plan_next_run
from tikpay_source.planning.state import RunState
from tikpay_source.runner import ReportJobRunner
from tikpay_source.settings import JOBS_TABLE, REPORT_TABLES, REPORT_TYPES

__all__ = [
    "ApiError",
    "AuthError",
    "ConfigError",
    "QuotaExhausted",
    "ReadInterrupted",
    "ReportFileError",
    "RunSummary",
    "TikpayError",
    "plan_next_run",
    "report_jobs",
    "run_summary",
    "tikpay",
]


def _tikpay(**settings: Any) -> list[DltResource]:
    config = build_config(**settings)
    handover = FileHandover(config.timezone.key)
    jobs = report_jobs(config, handover)
    tables = [report_table(report_type, jobs, handover, config) for report_type in REPORT_TYPES]
    for report_type, table in zip(REPORT_TYPES, tables, strict=True):
        table.selected = report_type in config.report_types  # report_types is the shortcut to selecting
    return [jobs, *tables]


_tikpay.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        inspect.Parameter(
            option.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=dlt.secrets.value if option.secret else option.default,
            annotation=option.annotation,
        )
        for option in OPTIONS
    ],
    return_annotation=list[DltResource],
)
_tikpay.__doc__ = (
    "The Tikpay source; every argument is also read from ``[sources.tikpay]`` config.\n\n"
    "Args:\n"
    + "".join(f"    {option.name}: {option.meaning.replace('`', '')}.\n" for option in OPTIONS)
    + "\nRaises:\n    ConfigError: a setting is invalid; raised here, before any request.\n"
)
tikpay = dlt.source(name="tikpay", section="tikpay", max_table_nesting=0)(_tikpay)


@dlt.resource(name=JOBS_TABLE, **JOB_HINTS)
def report_jobs(config: TikpayConfig, handover: FileHandover) -> Iterator[dict[str, Any] | None]:
    """Plan, submit and track report jobs; yields one ``report_jobs`` row per change of a job.

    The report types it submits are those whose table's resource is selected. The
    connector's state (see :mod:`tikpay_source.planning.state`) is committed with the rows it describes.
    On Delta tables (see :mod:`tikpay_source.loading.lake`) the table gets one row per job and run.
    """
    try:
        resources = dlt.current.source().resources
        selected = resources.selected
    except DltException:  # iterated on its own, outside a source: no table can take the rows
        resources, selected = None, {}
    delta = uses_delta(config.table_format)  # before any request: a missing extra costs no quota
    report_types = selected_report_types(REPORT_TYPES, selected)
    state = RunState(dlt.current.source_state(), config.file_type)
    runner = ReportJobRunner(config, state, handover, report_types, retry_failed=config.retry_failed)
    if not delta:
        yield from runner.run()
        return
    if resources is not None:
        use_delta_for_jobs(resources[JOBS_TABLE])
    yield from one_row_per_job(runner.run())


def report_table(
    report_type: str, jobs: DltResource, handover: FileHandover, config: TikpayConfig
) -> DltResource:
    """The resource of one report table: the rows of the files ``jobs`` hands over for ``report_type``.

    On a warehouse a file's rows are appended where nothing of its window can be in the
    table yet, else they replace the window's rows (see :mod:`tikpay_source.loading.presence`); on
    Delta tables a scoped merge replaces them (see :mod:`tikpay_source.loading.lake`).
    """
    table = REPORT_TABLES[report_type]
    delta_windows = DeltaWindows()
    writes = TableWrites(table)

    def rows(job: dict[str, Any]) -> Iterator[pa.RecordBatch | DataItemWithMeta]:
        handed = handover.claim(job, report_type)
        if handed is None:
            return
        if uses_delta(config.table_format):
            yield from delta_windows.batches(job["window_start"], handover.stream(handed))
        else:
            disposition = writes.disposition(handed.window, handed.state_loaded_it)
            yield from handover.stream(handed, disposition)  # files to import, or Arrow batches

    return dlt.transformer(rows, data_from=jobs, name=table, **REPORT_HINTS)
