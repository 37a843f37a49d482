"""A dlt source for the Tikpay Data API: report jobs over incremental windows, loaded exactly once.

Building the source only validates its configuration; every request is made while the
``report_jobs`` resource is iterated, so orchestrators can build it when they load code.

    import dlt
    from tikpay_source import tikpay

    pipeline = dlt.pipeline("tikpay", destination="duckdb", dataset_name="tikpay_data")
    pipeline.run(tikpay())
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt
from dlt.sources import DltResource

from tikpay_source.config import TikpayConfig, build_config
from tikpay_source.errors import (
    ApiError,
    AuthError,
    ConfigError,
    QuotaExhausted,
    ReadInterrupted,
    ReportFileError,
    TikpayError,
)
from tikpay_source.outcome import RunSummary, run_summary
from tikpay_source.progress import Progress
from tikpay_source.runner import ReportJobRunner
from tikpay_source.settings import (
    DEFAULT_ENVIRONMENT,
    DEFAULT_FILE_TYPE,
    DEFAULT_LAG,
    DEFAULT_MAX_REQUESTS,
    DEFAULT_MAX_RETRY_WAIT_SECONDS,
    DEFAULT_MAX_WAIT_SECONDS,
    DEFAULT_POLL_INTERVAL_SECONDS,
    DEFAULT_TIMEZONE,
    DEFAULT_WINDOW,
    JOBS_TABLE,
)

__all__ = [
    "ApiError",
    "AuthError",
    "ConfigError",
    "QuotaExhausted",
    "ReadInterrupted",
    "ReportFileError",
    "RunSummary",
    "TikpayError",
    "report_jobs",
    "run_summary",
    "tikpay",
]


@dlt.source(name="tikpay", section="tikpay", max_table_nesting=0)
def tikpay(
    client_id: str | None = dlt.secrets.value,
    client_secret: str | None = dlt.secrets.value,
    api_key: str | None = dlt.secrets.value,
    environment: str = DEFAULT_ENVIRONMENT,
    base_url: str | None = None,
    token_url: str | None = None,
    token_auth: str = "basic",
    report_types: Any = None,  # a list, or a JSON list or comma-separated string from the environment
    file_type: str = DEFAULT_FILE_TYPE,
    timezone: str = DEFAULT_TIMEZONE,
    start_time: str | None = None,
    end_time: str | None = None,
    window: str = DEFAULT_WINDOW,
    lag: str = DEFAULT_LAG,
    poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS,
    max_wait: float = DEFAULT_MAX_WAIT_SECONDS,
    max_requests: int = DEFAULT_MAX_REQUESTS,
    max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT_SECONDS,
    ledger_dir: str | None = None,
    retry_failed: bool = False,
    progress: Progress | None = None,
) -> DltResource:
    """The Tikpay source; every argument is also read from ``[sources.tikpay]`` config.

    Args:
        client_id, client_secret: OAuth2 client credentials (secrets).
        api_key: the ``x-api-key`` (secret); its quota is 20 requests per 24 hours.
        environment: Tikpay environment, from which ``base_url`` and ``token_url`` derive.
        base_url, token_url: override the derived URLs (the sandbox sets them).
        token_auth: ``basic`` sends client credentials as HTTP Basic, ``form`` in the body.
        report_types: any of CUSTOMERS, PAYMENTS, TAPS, TRIPS (default all four).
        file_type: ``csv`` or ``xml``.
        timezone: the operator's IANA zone; windows are planned in its wall-clock time.
        start_time: local time where a report type's first run begins.
        end_time: optional upper bound; default the last complete window before now - lag.
        window: ISO 8601 window size, whole days or a part of a day dividing 24 hours.
        lag: how far behind now a window must end before it is requested.
        poll_interval, max_wait: seconds between job-list polls, and the most to wait in one run.
        max_requests: the most API requests this run may spend.
        max_retry_wait: the longest 429 Retry-After worth waiting out, in seconds.
        ledger_dir: where the per-key request ledger lives (default ``~/.dlt/tikpay``).
        retry_failed: give windows that failed repeatedly a fresh set of attempts.
        progress: where progress lines go (default stderr).

    Returns:
        The ``report_jobs`` resource, which also fills the four report tables.

    Raises:
        ConfigError: a setting is invalid; raised here, before any request.
    """
    config = build_config(
        client_id=client_id,
        client_secret=client_secret,
        api_key=api_key,
        environment=environment,
        base_url=base_url,
        token_url=token_url,
        token_auth=token_auth,
        report_types=report_types,
        file_type=file_type,
        timezone=timezone,
        start_time=start_time,
        end_time=end_time,
        window=window,
        lag=lag,
        poll_interval=poll_interval,
        max_wait=max_wait,
        max_requests=max_requests,
        max_retry_wait=max_retry_wait,
        ledger_dir=ledger_dir,
    )
    return report_jobs(config, retry_failed=retry_failed, progress=progress)


@dlt.resource(name=JOBS_TABLE)
def report_jobs(
    config: TikpayConfig, retry_failed: bool = False, progress: Progress | None = None
) -> Iterator[Any]:
    """Submit, wait for and load report jobs; yields ``report_jobs`` rows and report row batches.

    Its resource state holds each report type's ``last_end`` and the jobs in flight, and
    is committed with the rows it describes.
    """
    runner = ReportJobRunner(
        config, dlt.current.resource_state(), progress=progress, retry_failed=retry_failed
    )
    yield from runner.run()
