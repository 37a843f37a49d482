"""Load Tikpay reports into a warehouse: ``python pipelines/tikpay.py --help``.

Flags override the ``[sources.tikpay]`` configuration for one run. Exit codes: 0 done,
1 failed, 2 bad input, 3 stopped for quota (try again later), 4 some windows failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import dlt
from dlt.common.configuration.exceptions import ConfigurationException, ConfigValueCannotBeCoercedException
from dlt.common.exceptions import DltException

from tikpay_source import TikpayError, run_summary, tikpay
from tikpay_source.errors import ConfigError
from tikpay_source.planning import plan_next_run
from tikpay_source.settings import (
    DATASET_NAME,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    PIPELINE_NAME,
    SANDBOX_PIPELINE_NAME,
)

SANDBOX_BACKFILL_DAYS = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python pipelines/tikpay.py",
        description="Load Tikpay Data API reports (CUSTOMERS, PAYMENTS, TAPS, TRIPS) with dlt. "
        "Flags override [sources.tikpay] in .dlt/config.toml for this run.",
        epilog="Exit codes: 0 done, 1 failed, 2 bad input, 3 stopped for quota (run again later), "
        "4 some windows failed.",
    )
    parser.add_argument(
        "--sandbox", action="store_true", help="run against a built-in sandbox API on loopback"
    )
    parser.add_argument("--report-types", help="comma-separated, e.g. TRIPS,TAPS (default: all four)")
    parser.add_argument("--start", help="local time where a report type's first run begins, e.g. 2025-01-01")
    parser.add_argument("--end", help="local upper bound (default: last complete window before now - lag)")
    parser.add_argument("--window", help="ISO 8601 window size: P1D, P7D, PT6H, ...")
    parser.add_argument("--file-type", choices=("csv", "xml"), help="report file format (default csv)")
    parser.add_argument("--timezone", help="the operator's IANA timezone (default Australia/Sydney)")
    parser.add_argument("--max-requests", type=int, help="most API requests this run may spend (default 20)")
    parser.add_argument("--max-wait", type=float, help="most seconds to wait for jobs in this run")
    parser.add_argument("--poll-interval", type=float, help="seconds between job-list polls")
    parser.add_argument(
        "--plan", action="store_true", help="print what a run would submit and spend, without any API request"
    )
    parser.add_argument("--retry-failed", action="store_true", help="retry windows that failed repeatedly")
    parser.add_argument(
        "--destination",
        help="dlt destination: duckdb (default), postgres, filesystem, bigquery, ... "
        "(or destination_type in .dlt/config.toml, or DESTINATION_TYPE)",
    )
    parser.add_argument(
        "--dataset", default=DATASET_NAME, help=f"dataset (schema) name (default {DATASET_NAME})"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    return parser.parse_args(argv)


def source_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Only the flags the user gave: everything else comes from dlt config."""
    chosen = {
        "report_types": args.report_types,
        "start_time": args.start,
        "end_time": args.end,
        "window": args.window,
        "file_type": args.file_type,
        "timezone": args.timezone,
        "max_requests": args.max_requests,
        "max_wait": args.max_wait,
        "poll_interval": args.poll_interval,
    }
    return {name: value for name, value in chosen.items() if value is not None}


@contextlib.contextmanager
def sandbox_settings(overrides: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Start the in-process sandbox and give the source its URLs, demo credentials and a quick pace."""
    from tikpay_source.sandbox import DEMO_API_KEY, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox

    with Sandbox() as sandbox, tempfile.TemporaryDirectory(prefix="tikpay-sandbox-ledger-") as ledger_dir:
        zone = ZoneInfo(overrides.get("timezone") or sandbox.settings.timezone)
        today = datetime.now(zone).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
        settings: dict[str, Any] = {
            "base_url": sandbox.base_url,
            "token_url": sandbox.token_url,
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "api_key": DEMO_API_KEY,
            "ledger_dir": ledger_dir,  # each sandbox starts with a fresh quota
            "start_time": (today - timedelta(days=SANDBOX_BACKFILL_DAYS)).isoformat(),
            "poll_interval": 0.5,
            "max_wait": 60.0,
        }
        print(f"sandbox: Tikpay Data API stand-in at {sandbox.base_url}", file=sys.stderr)
        yield settings | overrides


# Left alone, DuckDB buffers up to 80% of RAM while loading; this keeps a large report's load
# flat (and faster). A value set in the environment or in config wins.
DUCKDB_LOAD_SETTINGS = '{"memory_limit": "128MB", "preserve_insertion_order": false}'


def make_pipeline(args: argparse.Namespace) -> Any:
    name = SANDBOX_PIPELINE_NAME if args.sandbox else PIPELINE_NAME
    # one flag or one setting switches the warehouse; DuckDB when neither is given
    destination = args.destination or dlt.config.get("destination_type", str) or "duckdb"
    if destination == "duckdb" and dlt.config.get("destination.duckdb.credentials.global_config") is None:
        os.environ["DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG"] = DUCKDB_LOAD_SETTINGS
    return dlt.pipeline(pipeline_name=name, destination=destination, dataset_name=args.dataset)


def run(args: argparse.Namespace, settings: dict[str, Any]) -> int:
    from tikpay_source.progress import Progress

    source = tikpay(**settings, progress=Progress(quiet=args.quiet))  # validates before any request
    pipeline = make_pipeline(args)
    if args.plan:
        return show_plan(pipeline, source)
    if pipeline.has_pending_data:
        print("tikpay: finishing the load left pending by an interrupted run", file=sys.stderr)
        pipeline.normalize()  # the package's file format was fixed when it was extracted
        pipeline.load()
    pipeline.run(source, loader_file_format=file_format_for(pipeline))
    summary = run_summary(pipeline)
    make_views(pipeline, quiet=args.quiet)
    where = f"{pipeline.destination.destination_name} dataset {pipeline.dataset_name}"
    print(f"pipeline {pipeline.pipeline_name}: {where}")
    for line in summary.lines():
        print(line)
    return summary.exit_code


def file_format_for(pipeline: Any) -> str | None:
    """Parquet on the filesystem destination (object storage, lakehouses); the destination's own elsewhere."""
    return "parquet" if pipeline.destination.destination_name == "filesystem" else None


def make_views(pipeline: Any, quiet: bool) -> None:
    """The BI views (tikpay_source/views.py) after a load; a failure is reported, never fatal.

    The rows and the state are committed by now, so a view that cannot be made (a
    permission, say) must not turn a good load into a failed run.
    """
    from tikpay_source.views import create_views

    try:
        lines = create_views(pipeline)
    except Exception as exc:  # any database error: the load itself succeeded
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        lines = [f"views: not created: {type(exc).__name__}: {first}"]
    if not quiet:
        for line in lines:
            print(line, file=sys.stderr)


def show_plan(pipeline: Any, source: Any) -> int:
    """``--plan``: the windows a run would submit and what they cost; no API request is made."""
    pipeline.sync_destination()  # on a fresh machine the state lives only in the destination
    for line in plan_next_run(pipeline, source).lines():
        print(line)
    return EXIT_OK


def _root_cause(exc: BaseException) -> BaseException:
    """dlt wraps a step's failure; the user wants the innermost reason."""
    seen = exc
    while True:
        inner = getattr(seen, "exception", None) or seen.__cause__ or seen.__context__
        if inner is None or inner is seen:
            return seen
        seen = inner


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = source_overrides(args)
    try:
        if args.sandbox:
            with sandbox_settings(overrides) as settings:
                return run(args, settings)
        return run(args, overrides)
    except ConfigValueCannotBeCoercedException as exc:
        expected = getattr(exc.hint, "__name__", str(exc.hint))
        print(f"error: {exc.field_name} {exc.field_value!r} is not a valid {expected}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ConfigError, ConfigurationException) as exc:
        print(f"error: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DltException as exc:
        cause = _root_cause(exc)
        if isinstance(cause, TikpayError):
            print(f"error: {cause}", file=sys.stderr)
            return EXIT_BAD_INPUT if isinstance(cause, ConfigError) else EXIT_FAILED
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        print(f"error: {type(cause).__name__}: {first}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted: nothing of this run was committed; the next run resumes safely", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
