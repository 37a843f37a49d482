"""Planning report windows: pure functions over naive local wall-clock times.

The Data API reads ``startTime`` and ``endTime`` as naive local times in the operator's
timezone, and a job covers ``startTime <= t < endTime``. Windows are therefore planned
as wall-clock intervals: contiguous, half-open and aligned to a grid that starts at
local midnight. A local day across a daylight-saving change is simply the interval
from one midnight to the next (23 or 25 real hours), so consecutive windows can never
lose or double a row, whatever the clocks do in between.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pendulum

from tikpay_source.errors import ConfigError
from tikpay_source.settings import LOCAL_DATETIME_FORMAT

DAY = timedelta(days=1)
# Multi-day windows are aligned to Mondays (P7D runs Monday to Monday).
_GRID_ANCHOR = date(2000, 1, 3)
_ALLOWED_WINDOWS = "whole days (P1D, P7D, P2W) or a part of a day that divides 24 hours (PT1H, PT6H, PT30M)"


@dataclass(frozen=True, order=True)
class Window:
    """One report job's time range for one report type, in local wall-clock time."""

    start: datetime
    end: datetime
    report_type: str

    @property
    def key(self) -> str:
        """Identity of the window in dlt state: report type, start and end as the API sees them."""
        return f"{self.report_type}|{format_local(self.start)}|{format_local(self.end)}"

    def describe(self) -> str:
        """Human-readable form for logs and errors."""
        return f"{self.report_type} {format_local(self.start)} to {format_local(self.end)}"


def format_local(value: datetime) -> str:
    """Render a naive local time the way the API expects it: ``2025-01-01T04:00:00``."""
    return value.strftime(LOCAL_DATETIME_FORMAT)


def parse_local(value: str, name: str = "time") -> datetime:
    """Parse a naive local date-time or date (``2025-01-01`` means its midnight).

    A value with an offset is refused: the API has no notion of one, so accepting it
    would silently shift the window.
    """
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{name} {text!r} is not a local date-time; use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS"
        ) from None
    if parsed.tzinfo is not None:
        raise ConfigError(
            f"{name} {text!r} has a UTC offset; give the operator's local time without one, "
            "e.g. 2025-01-01T00:00:00"
        )
    return parsed.replace(microsecond=0)


def parse_duration(value: str, name: str) -> timedelta:
    """Parse an ISO 8601 duration of days, hours, minutes and seconds (no months or years)."""
    text = str(value).strip()
    try:
        parsed = pendulum.parse(text) if text.upper().startswith("P") else None
    except (pendulum.parsing.exceptions.ParserError, ValueError):
        parsed = None
    if not isinstance(parsed, pendulum.Duration):
        raise ConfigError(f"{name} {text!r} is not an ISO 8601 duration such as P1D, PT6H or PT30M")
    if parsed.years or parsed.months:
        raise ConfigError(f"{name} {text!r} uses months or years, which have no fixed length; use days")
    return timedelta(seconds=parsed.total_seconds())


def parse_window_size(value: str) -> timedelta:
    """Parse the ``window`` setting and check it tiles the local day grid."""
    size = parse_duration(value, "window")
    if size <= timedelta(0):
        raise ConfigError(f"window {value!r} must be longer than zero; use {_ALLOWED_WINDOWS}")
    if size >= DAY and size % DAY:
        raise ConfigError(f"window {value!r} is not a whole number of days; use {_ALLOWED_WINDOWS}")
    if size < DAY and (DAY % size or size % timedelta(minutes=1)):
        raise ConfigError(f"window {value!r} does not divide a day evenly; use {_ALLOWED_WINDOWS}")
    return size


def floor_to_grid(moment: datetime, size: timedelta) -> datetime:
    """The latest window boundary at or before ``moment`` (wall-clock arithmetic)."""
    midnight = datetime.combine(moment.date(), datetime.min.time())
    if size < DAY:
        return midnight + ((moment - midnight) // size) * size
    days = size // DAY
    offset = (moment.date() - _GRID_ANCHOR).days % days
    return midnight - offset * DAY


def next_boundary(moment: datetime, size: timedelta) -> datetime:
    """The first window boundary strictly after ``moment``."""
    return floor_to_grid(moment, size) + size


def split_windows(report_type: str, start: datetime, end: datetime, size: timedelta) -> Iterator[Window]:
    """Cut ``[start, end)`` at every grid boundary, oldest first.

    An unaligned ``start`` (a first run's ``start_time``) or ``end`` (an explicit
    ``end_time``) gives one shorter window at that edge; all others are aligned.
    """
    cursor = start
    while cursor < end:
        boundary = min(next_boundary(cursor, size), end)
        yield Window(cursor, boundary, report_type)
        cursor = boundary


def iso_duration(size: timedelta) -> str:
    """An ISO 8601 rendering of a window size (P1D, PT6H, PT30M)."""
    if size % DAY == timedelta(0):
        return f"P{size.days}D"
    minutes = int(size.total_seconds() // 60)
    return f"PT{minutes // 60}H" if minutes % 60 == 0 else f"PT{minutes}M"


def default_end(now_local: datetime, lag: timedelta, size: timedelta) -> datetime:
    """End of the last complete window before ``now - lag``: the default ``end_time``."""
    return floor_to_grid(now_local - lag, size)
