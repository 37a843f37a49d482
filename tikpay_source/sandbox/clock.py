"""The sandbox clock and the conversions between instants and local wall-clock text.

Everything time-dependent in the sandbox (token and link expiry, job retention, the
quota window, completion delays) reads this clock instead of the system clock, so a
test can jump seven days ahead with ``advance`` rather than sleep.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

# The reference writes every date-time as ``2025-01-01T04:00:00``: no offset, no fraction.
LOCAL_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


class SandboxClock:
    """A thread-safe clock that follows real time from a chosen start and can jump ahead."""

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0 if start is None else start.timestamp() - time.time()

    def time(self) -> float:
        """Seconds since the Unix epoch on the sandbox clock."""
        with self._lock:
            return time.time() + self._offset

    def now(self) -> datetime:
        """The sandbox clock as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), timezone.utc)

    def advance(self, seconds: float) -> None:
        """Move the clock forward; moving it backward would break expiry invariants."""
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        with self._lock:
            self._offset += seconds


def parse_local(text: str) -> datetime:
    """Parse a ``YYYY-MM-DDTHH:MM:SS`` local date-time; raise ValueError for anything else."""
    if not isinstance(text, str) or not LOCAL_DATETIME_RE.fullmatch(text):
        raise ValueError("must be a local date-time YYYY-MM-DDTHH:MM:SS without offset")
    return datetime.fromisoformat(text)


def format_local(epoch: float, tz: ZoneInfo) -> str:
    """The naive local wall-clock text of an instant, as the API and the files write it."""
    return datetime.fromtimestamp(int(epoch), tz).replace(tzinfo=None).isoformat()


def utc_hours_covering(start: datetime, end: datetime, tz: ZoneInfo) -> range:
    """Indexes (hours since the epoch) of every UTC hour that can hold a wall time in [start, end).

    A wall time maps to one or two instants (two in a fall-back hour, none in a
    spring-forward gap), so both folds are tried and an hour of margin is added on
    each side; rows are then filtered on their wall-clock text, which is exact.
    """
    firsts = [start.replace(tzinfo=tz, fold=f).timestamp() for f in (0, 1)]
    lasts = [end.replace(tzinfo=tz, fold=f).timestamp() for f in (0, 1)]
    return range(int(min(firsts) // 3600) - 1, int(max(lasts) // 3600) + 2)


class WallClock:
    """Fast instant -> local wall-text conversion for a zone, cached per UTC hour.

    Data generation converts millions of instants; doing a zoneinfo lookup for each
    would dominate the run time, so the local start of each UTC hour is cached and
    seconds are added to it. Hours in which the offset changes (for instance Lord
    Howe's half-hour shift) fall back to the exact per-instant conversion.
    """

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz
        self._hours: dict[int, datetime | None] = {}

    def text(self, epoch: int) -> str:
        """Naive local ``YYYY-MM-DDTHH:MM:SS`` of an integer epoch second."""
        hour = epoch // 3600
        try:
            local_start = self._hours[hour]
        except KeyError:
            local_start = self._hour_start(hour)
            if len(self._hours) > 4096:  # bound memory for very long windows
                self._hours.clear()
            self._hours[hour] = local_start
        if local_start is None:
            return format_local(epoch, self._tz)
        return (local_start + timedelta(seconds=epoch - hour * 3600)).isoformat()

    def _hour_start(self, hour: int) -> datetime | None:
        first = datetime.fromtimestamp(hour * 3600, self._tz)
        last = datetime.fromtimestamp(hour * 3600 + 3599, self._tz)
        if first.utcoffset() != last.utcoffset():
            return None
        return first.replace(tzinfo=None)
