"""Load Tikpay reports into a warehouse: ``python pipelines/tikpay.py --help``.

Flags override the ``[sources.tikpay]`` configuration for one run; the pipeline's
``destination_type`` and ``dataset_name`` come from dlt's configuration as usual, with
DuckDB and ``tikpay_data`` when nothing is set. Exit codes: 0 done, 1 failed, 2 bad
input, 3 stopped for quota (try again later), 4 some windows failed, 5 another run of the
pipeline holds its lock, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn


def _stopped_while_starting(_signum: int, _frame: Any) -> NoReturn:
    """Ctrl-C or SIGTERM while dlt is still being imported: nothing was done yet, so stop at once."""
    print("interrupted before the run began: nothing was done", file=sys.stderr)
    os._exit(130)  # EXIT_INTERRUPTED, which is not imported yet


if __name__ == "__main__":  # before the imports below, which take most of a second
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not if started with it ignored
        signal.signal(signal.SIGINT, _stopped_while_starting)
    signal.signal(signal.SIGTERM, _stopped_while_starting)

import dlt
import dlt.destinations
from dlt.common.configuration.providers import DictionaryProvider

from tikpay_source import (
    RunSummary,
    plan_lines,
    plan_next_run,
    run_lock,
    run_summary,
    tikpay,
)
from tikpay_source.config import OPTIONS, parse_report_types, parse_timezone
from tikpay_source.errors import ConfigError, caused_by_interrupt
from tikpay_source.loading.destinations import profile_of
from tikpay_source.loading.shared_ledger import ledger_where
from tikpay_source.loading.views import create_views, rows_in_all
from tikpay_source.messages import error_line
from tikpay_source.progress import show_progress
from tikpay_source.settings import (
    DATASET_NAME,
    DEFAULT_TIMEZONE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    JOBS_TABLE,
    PIPELINE_NAME,
    REPORT_TABLES,
    SANDBOX_PIPELINE_NAME,
)

SANDBOX_BACKFILL_DAYS = 2
INTERRUPTED = "interrupted: nothing of this run was committed; the next run resumes safely"

# The script's defaults, as dlt's last configuration provider: any setting in the environment
# or the .dlt files wins. Left alone, DuckDB buffers up to 80% of RAM while loading; the
# memory limit keeps a large report's load flat (and faster).
SCRIPT_DEFAULTS: dict[str, Any] = {
    "destination_type": "duckdb",
    "dataset_name": DATASET_NAME,
    "destination": {
        "duckdb": {
            "credentials": {"global_config": {"memory_limit": "64MB", "preserve_insertion_order": False}}
        }
    },
}
_FLAG_TYPES = {int: int, float: float}


class ScriptDefaults(DictionaryProvider):
    """The script's defaults (:data:`SCRIPT_DEFAULTS`), consulted after every other provider."""

    NAME = "tikpay script defaults"

    def __init__(self) -> None:
        super().__init__()
        self._config_doc = SCRIPT_DEFAULTS

    @property
    def name(self) -> str:
        return self.NAME


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python pipelines/tikpay.py",
        description="Load Tikpay Data API reports (CUSTOMERS, PAYMENTS, TAPS, TRIPS) with dlt. "
        "Flags override [sources.tikpay] in .dlt/config.toml for this run.",
        epilog="Exit codes: 0 done, 1 failed, 2 bad input, 3 stopped for quota (run again later), "
        "4 some windows failed, 5 another run of the pipeline holds its lock, 130 interrupted.",
    )
    parser.add_argument(
        "--sandbox", action="store_true", help="run against a built-in sandbox API on loopback"
    )
    for option in OPTIONS:
        if option.flag is None:
            continue
        meaning = option.meaning.replace("`", "")
        if option.annotation is bool:
            parser.add_argument(
                option.flag, dest=option.name, action="store_true", default=None, help=meaning
            )
        else:
            kind = _FLAG_TYPES.get(option.annotation, str)
            parser.add_argument(option.flag, dest=option.name, type=kind, help=meaning)
    parser.add_argument(
        "--plan", action="store_true", help="print what a run would submit and spend, without any API request"
    )
    parser.add_argument(
        "--destination",
        help="dlt destination: duckdb (default), postgres, filesystem, bigquery, ... "
        "(or destination_type in .dlt/config.toml, or DESTINATION_TYPE)",
    )
    parser.add_argument(
        "--dataset", help=f"dataset (schema) name (or dataset_name in config; default {DATASET_NAME})"
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help="load the --report-types again from --start: their tables and state are dropped first "
        "(dlt's refresh='drop_resources'); the other tables are left as they are",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary as one JSON object on stdout (for orchestrators); progress stays on stderr",
    )
    return parser.parse_args(argv)


def source_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Only the flags the user gave: everything else comes from dlt config."""
    given = {option.name: getattr(args, option.name) for option in OPTIONS if option.flag}
    return {name: value for name, value in given.items() if value is not None}


@contextlib.contextmanager
def sandbox_settings(overrides: dict[str, Any], *, quiet: bool = False) -> Iterator[dict[str, Any]]:
    """Start the in-process sandbox and give the source what only the sandbox can: its URLs, demo
    credentials and a fresh ledger. Its quick pace (a short backfill, fast polls) applies only
    where neither a flag nor dlt's configuration sets the same setting; the sandbox plays the
    operator in the configured ``timezone``.
    """
    from tikpay_source.sandbox import (
        DEMO_API_KEY,
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        Sandbox,
        SandboxSettings,
    )

    def configured(name: str) -> Any:
        return overrides.get(name, dlt.config.get(f"sources.tikpay.{name}"))

    zone = parse_timezone(configured("timezone") or DEFAULT_TIMEZONE)  # a bad one: exit 2, before it starts
    with (
        Sandbox(SandboxSettings(timezone=zone.key)) as sandbox,
        tempfile.TemporaryDirectory(prefix="tikpay-sandbox-ledger-") as ledger_dir,
    ):
        today = datetime.now(zone).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
        owned: dict[str, Any] = {
            "base_url": sandbox.base_url,
            "token_url": sandbox.token_url,
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "api_key": DEMO_API_KEY,
            "ledger_dir": ledger_dir,  # each sandbox starts with a fresh quota
            "ledger": "local",  # the sandbox's quota is its own: it must not count in a shared ledger
        }
        pace = {
            "start_time": (today - timedelta(days=SANDBOX_BACKFILL_DAYS)).isoformat(),
            "poll_interval": 0.5,
            "max_wait": 60.0,
        }
        pace = {name: value for name, value in pace.items() if configured(name) is None}
        if not quiet:
            quick = f"; for a quick trial also {', '.join(pace)}" if pace else ""
            print(
                f"sandbox: Tikpay Data API stand-in at {sandbox.base_url} ({zone.key}); it sets base_url, "
                f"token_url, the credentials and a fresh local ledger{quick}",
                file=sys.stderr,
            )
        yield pace | overrides | owned


def make_pipeline(args: argparse.Namespace) -> Any:
    """The pipeline; a flag wins over dlt's configuration, which wins over the script's defaults."""
    if all(provider.name != ScriptDefaults.NAME for provider in dlt.config.config_providers):
        dlt.config.register_provider(ScriptDefaults())
    chosen = {"destination": args.destination, "dataset_name": args.dataset}
    name = SANDBOX_PIPELINE_NAME if args.sandbox else PIPELINE_NAME
    return dlt.pipeline(pipeline_name=name, **{k: v for k, v in chosen.items() if v})


def run(args: argparse.Namespace, settings: dict[str, Any]) -> int:
    source = tikpay(**settings)  # validates before any request
    pipeline = make_pipeline(args)
    if args.reload and (args.report_types is None or args.plan):
        raise ConfigError(
            "--reload needs --report-types naming the report types to load again, and no --plan "
            "(the plan of a reload is every window from --start)"
        )
    if args.plan:
        return show_plan(pipeline, source)
    profile = profile_of(pipeline.destination)
    file_format = profile.loader_file_format
    with run_lock(pipeline, source):  # before dlt restores the state: one run of a pipeline at a time
        pending = finish_pending_load(pipeline, source)
        if args.reload:  # only the chosen tables: report_jobs (the run history) and the other types stay
            tables = [REPORT_TABLES[report_type] for report_type in parse_report_types(args.report_types)]
            pipeline.run(
                source.with_resources(*tables), refresh="drop_resources", loader_file_format=file_format
            )
        else:
            pipeline.run(source, loader_file_format=file_format)
        summary = run_summary(pipeline, source).after(pending)
    make_views(pipeline, quiet=args.quiet or args.json)
    loaded = [table for table in REPORT_TABLES.values() if table in pipeline.default_schema.tables]
    summary = dataclasses.replace(summary, in_all=rows_in_all(pipeline, loaded))
    config = source.resources[JOBS_TABLE].explicit_args["config"]
    ledger = None if args.sandbox else ledger_where(config, pipeline)
    if args.json:  # one object for an orchestrator: the summary's fields, where things are, the exit code
        where = {"pipeline": pipeline.pipeline_name, "destination": pipeline.destination.destination_name}
        where |= {"dataset": pipeline.dataset_name, "state": pipeline.working_dir, "ledger": ledger}
        print(json.dumps(where | dataclasses.asdict(summary) | {"exit_code": summary.exit_code}))
        return summary.exit_code
    where_text = f"{pipeline.destination.destination_name} dataset {pipeline.dataset_name}"
    if profile.local_file:
        where_text += database_file(pipeline)
    print(f"pipeline {pipeline.pipeline_name}: {where_text}")
    shown_ledger = ledger or "this run's own (the sandbox's)"
    print(f"state in {pipeline.working_dir}; request ledger {shown_ledger}")
    for line in summary.lines():
        print(line)
    return summary.exit_code


def finish_pending_load(pipeline: Any, source: Any) -> RunSummary | None:
    """Load what an interrupted run extracted but never loaded; what that run did, if there was one."""
    if not pipeline.has_pending_data:
        return None
    print("tikpay: finishing the load left pending by an interrupted run", file=sys.stderr)
    pipeline.normalize()  # the package's file format was fixed when it was extracted
    pipeline.load()
    return run_summary(pipeline, source)  # its state, committed with the load just finished


def database_file(pipeline: Any) -> str:
    """``, in /path/to/file.duckdb``: where the destination's database file is (see ``local_file``)."""
    with pipeline.sql_client() as client:
        database = getattr(client.credentials, "database", None)
    return f", in {Path(database).resolve()}" if database else ""


def make_views(pipeline: Any, quiet: bool) -> None:
    """The BI views (tikpay_source/loading/views.py) after a load; a failure is reported, never fatal.

    The rows and the state are committed by now, so a view that cannot be made (a
    permission, say) must not turn a good load into a failed run.
    """
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
    for line in plan_lines(plan_next_run(pipeline, source)):
        print(line)
    return EXIT_OK


def _interrupt(signum: int, _frame: Any) -> NoReturn:
    """SIGTERM (a scheduler cancelling the job) ends the run as Ctrl-C does."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    if signal.getsignal(signal.SIGINT) is _stopped_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C is KeyboardInterrupt from here on
    signal.signal(signal.SIGTERM, _interrupt)
    args = parse_args(argv)
    overrides = source_overrides(args)
    show_progress(quiet=args.quiet)
    try:
        if args.sandbox:
            with sandbox_settings(overrides, quiet=args.quiet) as settings:
                return run(args, settings)
        return run(args, overrides)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if caused_by_interrupt(exc):  # dlt wraps an interrupt in its step's failure; DuckDB in an error
            print(INTERRUPTED, file=sys.stderr)
            return EXIT_INTERRUPTED
        line, code = error_line(exc)
        print(f"error: {line}", file=sys.stderr)
        return code
    finally:  # the run is over: a signal while Python exits changes nothing
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


if __name__ == "__main__":
    sys.exit(main())
