"""Validating the source's settings into one immutable object, before any request is made.

Every check here is pure: a bad value fails with one line naming it and what is
allowed, while the source is being built, so a typo never costs quota.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tikpay_source.errors import ConfigError
from tikpay_source.settings import (
    BASE_URL_TEMPLATE,
    FILE_TYPES,
    REPORT_TYPES,
    TOKEN_AUTH_METHODS,
    TOKEN_URL_TEMPLATE,
)
from tikpay_source.windows import default_end, parse_duration, parse_local, parse_window_size


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
    lag: timedelta
    poll_interval: float
    max_wait: float
    max_requests: int
    max_retry_wait: float
    ledger_dir: Path | None

    def end_bound(self, now_local: datetime) -> datetime:
        """Where planning stops: ``end_time`` if set, else the last complete window before now - lag."""
        return self.end_time or default_end(now_local, self.lag, self.window)

    def first_start(self, now_local: datetime) -> datetime:
        """Where a report type with no history begins: ``start_time``, else one window before the end."""
        return self.start_time or self.end_bound(now_local) - self.window


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


def build_config(
    *,
    client_id: str | None,
    client_secret: str | None,
    api_key: str | None,
    environment: str,
    base_url: str | None = None,
    token_url: str | None = None,
    token_auth: str = "basic",
    report_types: str | Sequence[str] | None = None,
    file_type: str = "csv",
    timezone: str = "Australia/Sydney",
    start_time: str | datetime | None = None,
    end_time: str | datetime | None = None,
    window: str = "P1D",
    lag: str = "PT1H",
    poll_interval: float = 60.0,
    max_wait: float = 900.0,
    max_requests: int = 20,
    max_retry_wait: float = 60.0,
    ledger_dir: str | Path | None = None,
) -> TikpayConfig:
    """Validate raw settings (from dlt config, flags or code) into a :class:`TikpayConfig`."""
    env = str(environment).strip()
    if not env or "/" in env or " " in env:
        raise ConfigError(f"environment {environment!r} is not an environment name such as prod-au1")
    start = parse_local(start_time, "start_time") if isinstance(start_time, str) else start_time
    end = parse_local(end_time, "end_time") if isinstance(end_time, str) else end_time
    for name, moment in (("start_time", start), ("end_time", end)):
        if moment is not None and not EARLIEST_TIME <= moment <= LATEST_TIME:
            raise ConfigError(f"{name} {moment.isoformat()} is outside the years 2000 to 2099")
    if start is not None and end is not None and start >= end:
        raise ConfigError(f"start_time {start.isoformat()} is not before end_time {end.isoformat()}")
    try:
        budget = int(max_requests)
    except (TypeError, ValueError):
        raise ConfigError(f"max_requests {max_requests!r} is not a whole number") from None
    if budget < 1:
        raise ConfigError(f"max_requests {max_requests!r} must be at least 1")
    return TikpayConfig(
        base_url=(base_url or BASE_URL_TEMPLATE.format(environment=env)).rstrip("/"),
        token_url=token_url or TOKEN_URL_TEMPLATE.format(environment=env),
        credentials=Credentials(
            _required_secret(client_id, "client_id"),
            _required_secret(client_secret, "client_secret"),
            _required_secret(api_key, "api_key"),
        ),
        token_auth=_choice(token_auth, TOKEN_AUTH_METHODS, "token_auth", normalise="lower"),
        report_types=parse_report_types(report_types),
        file_type=_choice(file_type, FILE_TYPES, "file_type", normalise="lower"),
        timezone=parse_timezone(timezone),
        start_time=start,
        end_time=end,
        window=parse_window_size(window),
        lag=parse_duration(lag, "lag"),
        poll_interval=_positive(poll_interval, "poll_interval"),
        max_wait=_positive(max_wait, "max_wait", allow_zero=True),
        max_requests=budget,
        max_retry_wait=_positive(max_retry_wait, "max_retry_wait", allow_zero=True),
        ledger_dir=Path(ledger_dir) if ledger_dir else None,
    )
