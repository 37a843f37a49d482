"""A dlt source for the Tikpay Data API: report jobs over incremental windows, loaded exactly once.

The source has six resources: ``report_jobs`` plans, submits and tracks the jobs (and
loads their metadata), ``customers``, ``payments``, ``taps`` and ``trips`` each load
the rows of their report type from the files of those jobs, and ``run_history`` a row
per run. Selecting resources selects report types::

    import dlt
    from tikpay_source import tikpay

    pipeline = dlt.pipeline("tikpay", destination="duckdb", dataset_name="tikpay_data")
    pipeline.run(tikpay().with_resources("report_jobs", "trips", "run_history"))  # TRIPS alone

Building the source only validates its configuration; every request is made while the
resources are iterated, so orchestrators can build it when they load code.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.exceptions import DltException
from dlt.extract.items import DataItemWithMeta
from dlt.sources import DltResource

from tikpay_source import settings
from tikpay_source.api.client import TikpayClient
from tikpay_source.config import TikpayConfig, build_config, configured_names, unknown_settings
from tikpay_source.errors import (
    ApiError,
    AuthError,
    ConfigError,
    QuotaExhausted,
    ReadInterrupted,
    ReportFileError,
    RunLocked,
    TikpayError,
)
from tikpay_source.files.fetching import ReportFetcher
from tikpay_source.loading.destinations import current_profile, running_pipeline
from tikpay_source.loading.handover import FileHandover
from tikpay_source.loading.lake import one_row_per_job, use_delta_for_jobs
from tikpay_source.loading.run_lock import run_lock
from tikpay_source.loading.shared_ledger import open_run_ledger
from tikpay_source.loading.tables import JOB_HINTS, REPORT_HINTS, RUN_HINTS, run_row, selected_report_types
from tikpay_source.loading.writers import table_writers
from tikpay_source.outcome import RunSummary, run_summary
from tikpay_source.planning.budget import RequestBudget, plan_next_run
from tikpay_source.planning.explain import plan_lines
from tikpay_source.planning.state import RunState
from tikpay_source.progress import log
from tikpay_source.runner import ReportJobRunner
from tikpay_source.settings import JOBS_TABLE, REPORT_TABLES, REPORT_TYPES, RUNS_TABLE

__all__ = [
    "ApiError",
    "AuthError",
    "ConfigError",
    "QuotaExhausted",
    "ReadInterrupted",
    "ReportFileError",
    "RunLocked",
    "RunSummary",
    "TikpayError",
    "plan_lines",
    "plan_next_run",
    "report_jobs",
    "run_lock",
    "run_summary",
    "tikpay",
]


@dlt.source(name="tikpay", section="tikpay", max_table_nesting=0)
def tikpay(
    *,
    client_id: str | None = dlt.secrets.value,
    client_secret: str | None = dlt.secrets.value,
    api_key: str | None = dlt.secrets.value,
    environment: str = settings.DEFAULT_ENVIRONMENT,
    base_url: str | None = None,
    token_url: str | None = None,
    token_auth: str = settings.DEFAULT_TOKEN_AUTH,
    report_types: Any = None,
    file_type: str = settings.DEFAULT_FILE_TYPE,
    timezone: str = settings.DEFAULT_TIMEZONE,
    start_time: str | None = None,
    end_time: str | None = None,
    window: str = settings.DEFAULT_WINDOW,
    max_window: str = settings.DEFAULT_MAX_WINDOW,
    lag: str = settings.DEFAULT_LAG,
    poll_interval: float = settings.DEFAULT_POLL_INTERVAL_SECONDS,
    max_wait: float = settings.DEFAULT_MAX_WAIT_SECONDS,
    max_requests: int = settings.DEFAULT_MAX_REQUESTS,
    max_retry_wait: float = settings.DEFAULT_MAX_RETRY_WAIT_SECONDS,
    ledger: str = settings.DEFAULT_LEDGER,
    lock_wait: float = settings.DEFAULT_LOCK_WAIT_SECONDS,
    lock_lease: float = settings.DEFAULT_LOCK_LEASE_SECONDS,
    ledger_dir: str | None = None,
    retry_failed: bool = False,
    table_format: str = settings.DEFAULT_TABLE_FORMAT,
) -> list[DltResource]:
    """The Tikpay source; every argument is also read from ``[sources.tikpay]`` config.

    The arguments are the settings of :data:`tikpay_source.config.OPTIONS`, where each is
    described (and the README's table of settings is made from): the three secrets, where
    the API is, which reports (``report_types``, ``file_type``), the operator's ``timezone``,
    the time range and window sizes (``start_time``, ``end_time``, ``window``,
    ``max_window``, ``lag``), how long a run waits and what it may spend (``poll_interval``,
    ``max_wait``, ``max_requests``, ``max_retry_wait``), where the request ledger and the run
    lock live (``ledger``, ``lock_wait``, ``lock_lease``, ``ledger_dir``), ``retry_failed``
    and, on ``filesystem``, ``table_format``.

    Raises:
        ConfigError: a setting is invalid; raised here, before any request.
    """
    config = build_config(**locals())  # first, so the arguments are all it holds
    # dlt ignores a key no argument asks for; it has no public way to list a section's keys
    documents = [getattr(provider, "_config_doc", {}) for provider in dlt.config.config_providers]
    for line in unknown_settings(configured_names(os.environ, documents)):
        log.warning("%s", line)
    handover = FileHandover()
    jobs = report_jobs(config, handover)
    tables = [report_table(report_type, jobs, handover) for report_type in REPORT_TYPES]
    for report_type, table in zip(REPORT_TYPES, tables, strict=True):
        table.selected = report_type in config.report_types  # report_types is the shortcut to selecting
    return [jobs, *tables, run_history(handover)]


@dlt.resource(name=JOBS_TABLE, **JOB_HINTS)
def report_jobs(config: TikpayConfig, handover: FileHandover) -> Iterator[dict[str, Any] | None]:
    """Plan, submit and track report jobs; yields one ``report_jobs`` row per change of a job.

    The report types it submits are those whose table's resource is selected. The
    connector's state (see :mod:`tikpay_source.planning.state`) is committed with the rows it describes.
    Here, at the edge, the run's collaborators are made (the key's ledger and the run's
    budget, the API client that spends through it, the fetcher of its files in a scratch
    folder of its own) and given to the runner, which owns the steps of the run.
    On Delta tables (see :mod:`tikpay_source.loading.lake`) the table gets one row per job and run.
    """
    try:
        resources = dlt.current.source().resources
        selected = resources.selected
    except DltException:  # iterated on its own, outside a source: no table can take the rows
        resources, selected = None, {}
    profile = current_profile(config.table_format)  # before any request: a missing extra costs no quota
    report_types = selected_report_types(REPORT_TYPES, selected)
    handover.start_run(table_writers(profile, config.timezone.key, report_types))
    state = RunState(dlt.current.source_state(), config.file_type)
    budget = RequestBudget(open_run_ledger(config, running_pipeline()))
    client = TikpayClient(
        config.base_url,
        config.token_url,
        config.credentials,
        budget,
        token_auth=config.token_auth,
        max_retry_wait=config.max_retry_wait,
    )
    with closing(client), tempfile.TemporaryDirectory(prefix="tikpay-") as scratch:
        fetcher = ReportFetcher(config.timezone.key, Path(scratch), profile)
        runner = ReportJobRunner(
            config, state, handover, report_types, api=client, budget=budget, fetcher=fetcher
        )
        if profile.delta and resources is not None:
            use_delta_for_jobs(resources[JOBS_TABLE])
        try:
            yield from one_row_per_job(runner.run()) if profile.delta else runner.run()
        finally:  # closed early by dlt (add_limit, say) too: run_history must not wait forever
            handover.finish_run(runner.run_id)


@dlt.resource(name=RUNS_TABLE, **RUN_HINTS)
def run_history(handover: FileHandover) -> Iterator[dict[str, Any] | None]:
    """One row per run, what it did (see :data:`tikpay_source.loading.tables.RUN_COLUMNS`), loaded with its data.

    It steps aside (``None``, which dlt skips) until ``report_jobs`` has recorded the run's
    outcome; with ``report_jobs`` not selected there is no run to record.
    """
    try:
        if JOBS_TABLE not in dlt.current.source().resources.selected:
            return
    except DltException:  # iterated on its own, outside a source
        return
    while (finished := handover.take_finished_run()) is None:
        yield None
    summary = RunSummary.of(dlt.current.source_state())
    if summary.run_id == finished:  # the outcome recorded is this run's
        yield run_row(summary)


def report_table(report_type: str, jobs: DltResource, handover: FileHandover) -> DltResource:
    """The resource of one report table: the rows of the files ``jobs`` hands over for ``report_type``.

    How the rows go in (appended or replacing their windows, as files or batches, or a
    scoped Delta merge) is the run's writer for the table (see :mod:`tikpay_source.loading.writers`).
    """

    def rows(job: dict[str, Any]) -> Iterator[pa.RecordBatch | DataItemWithMeta]:
        handed = handover.claim(job, report_type)
        if handed is not None:
            yield from handover.stream(handed)

    return dlt.transformer(rows, data_from=jobs, name=REPORT_TABLES[report_type], **REPORT_HINTS)
