"""Validating the source's settings into one immutable object, before any request is made.

Every check here is pure: a bad value fails with one line naming it and what is
allowed, while the source is being built, so a typo never costs quota.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tikpay_source.errors import ConfigError
from tikpay_source.planning.windows import parse_duration, parse_local, parse_window_size
from tikpay_source.settings import (
    BASE_URL_TEMPLATE,
    DEFAULT_ENVIRONMENT,
    DEFAULT_FILE_TYPE,
    DEFAULT_LAG,
    DEFAULT_LEDGER,
    DEFAULT_LOCK_LEASE_SECONDS,
    DEFAULT_LOCK_WAIT_SECONDS,
    DEFAULT_MAX_REQUESTS,
    DEFAULT_MAX_RETRY_WAIT_SECONDS,
    DEFAULT_MAX_WAIT_SECONDS,
    DEFAULT_MAX_WINDOW,
    DEFAULT_POLL_INTERVAL_SECONDS,
    DEFAULT_TABLE_FORMAT,
    DEFAULT_TIMEZONE,
    DEFAULT_TOKEN_AUTH,
    DEFAULT_WINDOW,
    FILE_TYPES,
    LEDGER_PLACES,
    REPORT_TYPES,
    TABLE_FORMATS,
    TOKEN_AUTH_METHODS,
    TOKEN_URL_TEMPLATE,
)


@dataclass(frozen=True)
class Credentials:
    """The three secrets; ``repr`` hides them so they never reach a log or traceback."""

    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)
    api_key: str = field(repr=False)


@dataclass(frozen=True)
class TikpayConfig:
    """Everything a run needs, validated. Times are naive local wall-clock times."""

    base_url: str
    token_url: str
    credentials: Credentials
    token_auth: str
    report_types: tuple[str, ...]
    file_type: str
    timezone: ZoneInfo
    start_time: datetime | None
    end_time: datetime | None
    window: timedelta
    max_window: timedelta
    lag: timedelta
    poll_interval: float
    max_wait: float
    max_requests: int
    max_retry_wait: float
    ledger_dir: Path | None
    retry_failed: bool = False
    table_format: str = DEFAULT_TABLE_FORMAT
    ledger: str = DEFAULT_LEDGER
    lock_wait: float = DEFAULT_LOCK_WAIT_SECONDS
    lock_lease: float = DEFAULT_LOCK_LEASE_SECONDS


@dataclass(frozen=True)
class Option:
    """One setting of ``[sources.tikpay]``: its name, default, meaning, and flag of the script.

    :data:`OPTIONS` is the one declaration of the settings: the script's flags and the
    README's table are made from it, and the source's explicit signature is tested to match it.
    """

    name: str
    default: Any
    annotation: Any
    meaning: str
    shown_default: str
    flag: str | None = None
    secret: bool = False


OPTIONS: tuple[Option, ...] = (
    Option("client_id", None, str | None, "OAuth2 client id of the Data API", "(secret)", secret=True),
    Option("client_secret", None, str | None, "OAuth2 client secret of the Data API", "(secret)", secret=True),
    Option("api_key", None, str | None, "the `x-api-key`; its quota is 20 requests per 24 hours", "(secret)",
           secret=True),
    Option("environment", DEFAULT_ENVIRONMENT, str,
           "derives `base_url` = `https://data-api.{environment}.tikpay.me/v1` and "
           "`token_url` = `https://auth.data-api.{environment}.tikpay.me/oauth2/token`", f"`{DEFAULT_ENVIRONMENT}`"),
    Option("base_url", None, str | None, "override the API's URL (the sandbox does)", "derived"),
    Option("token_url", None, str | None, "override the token endpoint's URL", "derived"),
    Option("token_auth", DEFAULT_TOKEN_AUTH, str,
           "send client credentials as HTTP Basic, or `form` to put them in the token request body",
           f"`{DEFAULT_TOKEN_AUTH}`"),
    Option("report_types", None, Any,
           "list of `CUSTOMERS`, `PAYMENTS`, `TAPS`, `TRIPS`; from the environment as JSON (`'[\"TRIPS\",\"TAPS\"]'`) "
           "or comma-separated; selects the report tables' resources", "all four", flag="--report-types"),
    Option("file_type", DEFAULT_FILE_TYPE, str, "`csv` or `xml`", f"`{DEFAULT_FILE_TYPE}`", flag="--file-type"),
    Option("timezone", DEFAULT_TIMEZONE, str,
           "the operator's IANA zone; checked against the `timezone` the job list reports", f"`{DEFAULT_TIMEZONE}`",
           flag="--timezone"),
    Option("start_time", None, str | None,
           "local date or date-time where a report type's first run begins, e.g. `2025-01-01`",
           "one window before the end", flag="--start"),
    Option("end_time", None, str | None, "optional upper bound (local)", "last complete window before now − `lag`",
           flag="--end"),
    Option("window", DEFAULT_WINDOW, str,
           "ISO 8601 duration: whole days (`P1D`, `P7D`) or a part of a day that divides 24 hours "
           "(`PT6H`, `PT1H`, `PT30M`)", f"`{DEFAULT_WINDOW}`", flag="--window"),
    Option("max_window", DEFAULT_MAX_WINDOW, str,
           "the longest span one job may cover when a report type is behind: owed windows are merged "
           "into jobs of whole windows up to this, sized from the bytes per day of earlier files",
           f"`{DEFAULT_MAX_WINDOW}`", flag="--max-window"),
    Option("lag", DEFAULT_LAG, str, "a window is requested only once it ended at least this long ago",
           f"`{DEFAULT_LAG}`"),
    Option("poll_interval", DEFAULT_POLL_INTERVAL_SECONDS, float,
           "seconds between job-list polls (each poll is one request)", f"`{DEFAULT_POLL_INTERVAL_SECONDS:g}`",
           flag="--poll-interval"),
    Option("max_wait", DEFAULT_MAX_WAIT_SECONDS, float,
           "most seconds one run waits for its jobs; `0` submits and leaves collection to the next run",
           f"`{DEFAULT_MAX_WAIT_SECONDS:g}`", flag="--max-wait"),
    Option("max_requests", DEFAULT_MAX_REQUESTS, int, "most API requests one run may spend",
           f"`{DEFAULT_MAX_REQUESTS}`", flag="--max-requests"),
    Option("max_retry_wait", DEFAULT_MAX_RETRY_WAIT_SECONDS, float,
           "longest `Retry-After` worth waiting out on a 429, in seconds", f"`{DEFAULT_MAX_RETRY_WAIT_SECONDS:g}`"),
    Option("ledger", DEFAULT_LEDGER, str,
           "where the request ledger and the run lock live: `local` (a file under `ledger_dir`, a file lock "
           "beside the pipeline) or `destination` (in the pipeline's destination, shared by every machine "
           "that loads into it: DuckDB, MotherDuck, PostgreSQL, filesystem)", f"`{DEFAULT_LEDGER}`",
           flag="--ledger"),
    Option("lock_wait", DEFAULT_LOCK_WAIT_SECONDS, float,
           "seconds a run waits for another run of the same pipeline to finish before it exits with code 5",
           f"`{DEFAULT_LOCK_WAIT_SECONDS:g}`"),
    Option("lock_lease", DEFAULT_LOCK_LEASE_SECONDS, float,
           "with `ledger = \"destination\"`: seconds a run's lock lasts unless renewed (a killed run's lock "
           "frees itself after this)", f"`{DEFAULT_LOCK_LEASE_SECONDS:g}`"),
    Option("ledger_dir", None, str | None, "where the per-key request ledger lives with `ledger = \"local\"`",
           "`tikpay` in dlt's data dir: `~/.dlt/tikpay` (`/var/dlt/tikpay` for root, `$DLT_DATA_DIR/tikpay` if set)"),
    Option("retry_failed", False, bool, "give windows that failed repeatedly a fresh set of attempts", "`false`",
           flag="--retry-failed"),
    Option("table_format", DEFAULT_TABLE_FORMAT, str,
           "on the `filesystem` destination: `delta` tables (a reloaded window replaces its rows; "
           "`pip install -e \".[delta]\"`) or `parquet` (plain files, append-only: a reloaded window is doubled)",
           f"`{DEFAULT_TABLE_FORMAT}`", flag="--table-format"),
)  # fmt: skip

DEFAULTS: dict[str, Any] = {option.name: option.default for option in OPTIONS}


def settings_table() -> str:
    """The README's table of settings, made from :data:`OPTIONS`."""
    rows = ["| setting | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{o.name}` | {o.shown_default} | {o.meaning} |" for o in OPTIONS]
    return "\n".join(rows)


def unknown_settings(names: Iterable[str]) -> list[str]:
    """A warning line for each name given under ``[sources.tikpay]`` that is no setting, with the closest one.

    dlt ignores a key no argument asks for, so ``report_type = ["TRIPS"]`` would silently
    run all four report types.
    """
    known = [option.name for option in OPTIONS]
    lines = []
    for name in sorted(set(names) - set(known)):
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]}?" if close else f"the settings are {', '.join(known)}"
        lines.append(f"[sources.tikpay] {name} is not a setting and is ignored; {hint}")
    return lines


def configured_names(environ: Mapping[str, str], documents: Iterable[Mapping[str, Any]]) -> list[str]:
    """The names set for the source: ``SOURCES__TIKPAY__<NAME>`` variables and ``[sources.tikpay]`` keys.

    ``documents`` are dlt's TOML documents (config.toml, secrets.toml); a table inside the
    section (a resource's own settings) is not a name of the source's.
    """
    names = [key[len(_ENV_PREFIX) :].lower() for key in environ if key.startswith(_ENV_PREFIX)]
    for document in documents:
        section = document.get("sources", {}).get("tikpay", {})
        names += [key for key, value in section.items() if not isinstance(value, Mapping)]
    return [name for name in names if "__" not in name]


_ENV_PREFIX = "SOURCES__TIKPAY__"


EARLIEST_TIME = datetime(2000, 1, 1)
LATEST_TIME = datetime(2099, 12, 31)


def _choice(value: str, allowed: Sequence[str], name: str, normalise: str = "upper") -> str:
    text = str(value).strip()
    text = text.upper() if normalise == "upper" else text.lower()
    if text not in allowed:
        raise ConfigError(f"{name} {value!r} is not one of {', '.join(allowed)}")
    return text


def parse_report_types(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """Accept a list, a JSON-ish list from the environment, or a comma-separated string."""
    if value is None:
        return REPORT_TYPES
    if isinstance(value, str):
        text = value.strip()
        try:
            items = json.loads(text) if text.startswith("[") else text.split(",")
        except json.JSONDecodeError:
            raise ConfigError(f'report_types {value!r} is not a list such as ["TRIPS","TAPS"]') from None
    else:
        items = list(value)
    names = [_choice(item, REPORT_TYPES, "report type") for item in items if str(item).strip()]
    if not names:
        raise ConfigError(f"report_types is empty; choose from {', '.join(REPORT_TYPES)}")
    return tuple(dict.fromkeys(names))


def parse_timezone(value: str) -> ZoneInfo:
    """An IANA zone such as Australia/Sydney."""
    try:
        return ZoneInfo(str(value).strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"timezone {value!r} is not an IANA time zone name such as Australia/Sydney"
        ) from None


def _positive(value: float | int, name: str, *, allow_zero: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} {value!r} is not a number of seconds") from None
    if not math.isfinite(number):
        raise ConfigError(f"{name} {value!r} must be a finite number of seconds")
    if number < 0 or (number == 0 and not allow_zero):
        raise ConfigError(f"{name} {value!r} must be {'zero or ' if allow_zero else ''}greater than zero")
    return number


def _required_secret(value: str | None, name: str) -> str:
    if value is None or not str(value).strip():
        raise ConfigError(
            f"{name} is missing; set it in .dlt/secrets.toml under [sources.tikpay] "
            f"or as SOURCES__TIKPAY__{name.upper()}"
        )
    return str(value).strip()


def build_config(**settings: Any) -> TikpayConfig:
    """Validate raw settings (from dlt config, flags or code) into a :class:`TikpayConfig`.

    Every name of :data:`OPTIONS` is accepted; a missing one takes its default.
    """
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}; the settings are {', '.join(DEFAULTS)}")
    raw = DEFAULTS | settings
    env = str(raw["environment"]).strip()
    if not env or "/" in env or " " in env:
        raise ConfigError(f"environment {raw['environment']!r} is not an environment name such as prod-au1")
    start, end = (_local_time(raw[name], name) for name in ("start_time", "end_time"))
    if start is not None and end is not None and start >= end:
        raise ConfigError(f"start_time {start.isoformat()} is not before end_time {end.isoformat()}")
    window = parse_window_size(raw["window"])
    return TikpayConfig(
        base_url=(raw["base_url"] or BASE_URL_TEMPLATE.format(environment=env)).rstrip("/"),
        token_url=raw["token_url"] or TOKEN_URL_TEMPLATE.format(environment=env),
        credentials=Credentials(
            _required_secret(raw["client_id"], "client_id"),
            _required_secret(raw["client_secret"], "client_secret"),
            _required_secret(raw["api_key"], "api_key"),
        ),
        token_auth=_choice(raw["token_auth"], TOKEN_AUTH_METHODS, "token_auth", normalise="lower"),
        report_types=parse_report_types(raw["report_types"]),
        file_type=_choice(raw["file_type"], FILE_TYPES, "file_type", normalise="lower"),
        timezone=parse_timezone(raw["timezone"]),
        start_time=start,
        end_time=end,
        window=window,
        max_window=_max_window(raw["max_window"], window),
        lag=parse_duration(raw["lag"], "lag"),
        poll_interval=_positive(raw["poll_interval"], "poll_interval"),
        max_wait=_positive(raw["max_wait"], "max_wait", allow_zero=True),
        max_requests=_at_least_one(raw["max_requests"], "max_requests"),
        max_retry_wait=_positive(raw["max_retry_wait"], "max_retry_wait", allow_zero=True),
        ledger_dir=Path(raw["ledger_dir"]) if raw["ledger_dir"] else None,
        retry_failed=bool(raw["retry_failed"]),
        table_format=_choice(raw["table_format"], TABLE_FORMATS, "table_format", normalise="lower"),
        ledger=_choice(raw["ledger"], LEDGER_PLACES, "ledger", normalise="lower"),
        lock_wait=_positive(raw["lock_wait"], "lock_wait", allow_zero=True),
        lock_lease=_positive(raw["lock_lease"], "lock_lease"),
    )


def _max_window(value: str, window: timedelta) -> timedelta:
    span = parse_duration(value, "max_window")
    if span < window:
        raise ConfigError(
            f"max_window {value!r} is shorter than window; use a duration of at least one window"
        )
    return span


def _local_time(value: str | datetime | None, name: str) -> datetime | None:
    moment = parse_local(value, name) if isinstance(value, str) else value
    if moment is not None and not EARLIEST_TIME <= moment <= LATEST_TIME:
        raise ConfigError(f"{name} {moment.isoformat()} is outside the years 2000 to 2099")
    return moment


def _at_least_one(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} {value!r} is not a whole number") from None
    if number < 1:
        raise ConfigError(f"{name} {value!r} must be at least 1")
    return number
