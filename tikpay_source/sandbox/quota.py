"""The per-API-key rolling request quota and the ``Retry-After`` values it produces.

The reference allows 20 requests per 24 hours per key and answers 429 with a
``Retry-After`` past that. The window is rolling and runs on the sandbox clock, so a
test can spend the quota, advance the clock and watch it recover.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from datetime import datetime, timezone
from email.utils import format_datetime

from tikpay_source.sandbox.clock import SandboxClock


class Quota:
    """Counts admitted requests per key over a rolling window."""

    def __init__(self, limit: int, window_seconds: float, clock: SandboxClock) -> None:
        self._limit = limit
        self._window = window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}
        self._refused: dict[str, int] = {}

    def acquire(self, key: str) -> float | None:
        """Count one request for ``key``; if over the limit, count nothing and return the wait.

        The wait is the number of seconds until the oldest counted request leaves the
        window, which is when the next request would be admitted.
        """
        now = self._clock.time()
        with self._lock:
            hits = self._prune(key, now)
            if len(hits) >= self._limit:
                self._refused[key] = self._refused.get(key, 0) + 1
                return max(0.0, hits[0] + self._window - now)
            hits.append(now)
            return None

    def used(self, key: str) -> int:
        """Requests of ``key`` counted in the current window."""
        with self._lock:
            return len(self._prune(key, self._clock.time()))

    def refused(self, key: str) -> int:
        """Requests of ``key`` refused because the window was full (a fault's 429 is not one)."""
        with self._lock:
            return self._refused.get(key, 0)

    def _prune(self, key: str, now: float) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self._window:
            hits.popleft()
        return hits


def format_retry_after(wait_seconds: float, now: float, style: str) -> str:
    """``Retry-After`` as delta-seconds (rounded up, at least 1) or as an RFC 9110 HTTP-date.

    The HTTP-date is on the sandbox clock, like the ``Date`` header the sandbox sends,
    so a client that subtracts ``Date`` from it gets the intended wait.
    """
    delta = max(1, math.ceil(wait_seconds))
    if style == "seconds":
        return str(delta)
    return format_datetime(datetime.fromtimestamp(math.floor(now) + delta, timezone.utc), usegmt=True)
