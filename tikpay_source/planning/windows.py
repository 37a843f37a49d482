"""Planning report windows: pure functions over naive local wall-clock times.

The Data API reads ``startTime`` and ``endTime`` as naive local times in the operator's
timezone, and a job covers ``startTime <= t < endTime``. Windows are therefore planned
as wall-clock intervals: contiguous, half-open and aligned to a :class:`Grid` that starts
at the user's ``start_time`` (a transit service day often runs 04:00 to 04:00), or at
local midnight without one. A local day across a daylight-saving change is simply the
interval from one boundary to the next (23 or 25 real hours), so consecutive windows
can never lose or double a row, whatever the clocks do in between.

Whether a window is *over* is a question about real time, not the wall clock: a window
ending at a wall-clock time the clocks repeat is over only after its second pass, and
``lag`` is added to that real instant (:func:`window_over_at`, :func:`last_boundary_over`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pendulum

from tikpay_source.errors import ConfigError
from tikpay_source.settings import LOCAL_DATETIME_FORMAT

DAY = timedelta(days=1)
# Without a start_time the grid starts at local midnight, and multi-day windows on Mondays
# (P7D runs Monday to Monday): the grid of every release before the anchor was kept in state.
DEFAULT_ANCHOR = datetime(2000, 1, 3)
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

    def overlaps(self, other: Window) -> bool:
        """Whether the two windows share an instant (of any report type)."""
        return self.start < other.end and other.start < self.end

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


@dataclass(frozen=True)
class Grid:
    """Window boundaries every ``size`` of wall-clock time from ``anchor`` (its date and time of day)."""

    anchor: datetime
    size: timedelta

    def floor(self, moment: datetime) -> datetime:
        """The latest boundary at or before ``moment``."""
        base = datetime.combine(moment.date(), self.anchor.time())
        if base > moment:
            base -= DAY
        if self.size < DAY:
            return base + ((moment - base) // self.size) * self.size
        offset = (base.date() - self.anchor.date()).days % (self.size // DAY)
        return base - offset * DAY

    def next(self, moment: datetime) -> datetime:
        """The first boundary strictly after ``moment``."""
        return self.floor(moment) + self.size

    def split(self, report_type: str, start: datetime, end: datetime) -> Iterator[Window]:
        """Cut ``[start, end)`` at every boundary, oldest first.

        An unaligned ``start`` (after a change of ``window``) or ``end`` (an explicit
        ``end_time``) gives one shorter window at that edge; all others are aligned.
        """
        cursor = start
        while cursor < end:
            boundary = min(self.next(cursor), end)
            yield Window(cursor, boundary, report_type)
            cursor = boundary


def coalesce(windows: Sequence[Window], grid: Grid, limit: timedelta) -> list[Window]:
    """Merge consecutive ``windows`` into spans of at most ``limit``, each a whole number of windows.

    Spans are cut at the boundaries of blocks of ``limit`` on the same anchor, so two plans
    of the same owed windows cut them alike: a reload covers exactly the span it replaces.
    """
    blocks = Grid(grid.anchor, block_size(limit, grid.size))
    spans: list[Window] = []
    for window in windows:
        last = spans[-1] if spans else None
        joins = (
            last is not None
            and last.end == window.start
            and blocks.floor(last.start) == blocks.floor(window.start)
        )
        if joins and last is not None and window.end <= blocks.next(last.start):
            spans[-1] = Window(last.start, window.end, window.report_type)
        else:
            spans.append(window)
    return spans


def owed_spans(
    report_type: str,
    known: Sequence[Window],
    cursor: datetime,
    end: datetime,
    grid: Grid,
    limit: timedelta,
    *,
    probe: bool,
) -> list[Window]:
    """The spans from ``cursor`` up to ``end`` that no ``known`` window covers, oldest first.

    The gaps between known windows (after a change of ``window``) are planned afresh, so
    coverage stays contiguous. Each gap's windows are merged into spans of at most
    ``limit`` (see :func:`coalesce`); with ``probe`` only the first span is returned, so the
    size of one file is known before longer ones are asked for.
    """
    gaps: list[list[Window]] = []
    for window in [*sorted(known), None]:
        stop = end if window is None else min(window.start, end)
        if stop > cursor:
            gaps.append(list(grid.split(report_type, cursor, stop)))
        if window is not None:
            cursor = max(cursor, window.end)
    spans = [span for gap in gaps for span in coalesce(gap, grid, limit)]
    return spans[:1] if probe else spans


def block_size(limit: timedelta, size: timedelta) -> timedelta:
    """The longest whole number of ``size`` windows within ``limit`` that still tiles the grid.

    Whole-day windows group in whole windows; part-of-a-day windows group in whole days,
    or, under a day, in a part of the day that divides it.
    """
    if size >= DAY:
        return max(size, (limit // size) * size)
    if limit >= DAY:
        return (limit // DAY) * DAY
    count = max(1, limit // size)
    while DAY % (count * size):
        count -= 1
    return count * size


def span_limit(
    bytes_per_day: float | None,
    window: timedelta,
    max_window: timedelta,
    target_bytes: float,
    probe: timedelta,
) -> timedelta:
    """How long one job may be for a report type whose files hold ``bytes_per_day``.

    As long as keeps its file near ``target_bytes``, never more than ``max_window`` nor
    less than one window; ``probe`` (capped the same way) while no file has been seen.
    """
    longest = max(window, (max_window // window) * window)
    if bytes_per_day is None:
        wanted = probe
    else:  # in days first: a tiny file's ratio would overflow a timedelta
        days = target_bytes / max(bytes_per_day, 1.0)
        wanted = longest if days >= longest / DAY else DAY * days
    return max(window, min(longest, (wanted // window) * window))


def window_over_at(boundary: datetime, zone: ZoneInfo) -> datetime:
    """The real instant (UTC) after which no row of a window ending at wall-clock ``boundary`` can be written.

    A wall-clock time the clocks repeat is over after its second pass; one the clocks skip
    is read with the offset before the change, which is later than the change itself.
    """
    first = boundary.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)
    second = boundary.replace(tzinfo=zone, fold=1).astimezone(timezone.utc)
    return max(first, second)


def last_boundary_over(now: datetime, zone: ZoneInfo, lag: timedelta, grid: Grid) -> datetime:
    """The latest boundary whose window has been over for at least ``lag`` of real time at ``now`` (aware)."""
    boundary = grid.floor((now - lag).astimezone(zone).replace(tzinfo=None))
    while window_over_at(boundary, zone) + lag > now:
        boundary = grid.floor(boundary - timedelta(seconds=1))
    return boundary


def iso_duration(size: timedelta) -> str:
    """An ISO 8601 rendering of a window size (P1D, PT6H, PT30M)."""
    if size % DAY == timedelta(0):
        return f"P{size.days}D"
    minutes = int(size.total_seconds() // 60)
    return f"PT{minutes // 60}H" if minutes % 60 == 0 else f"PT{minutes}M"
