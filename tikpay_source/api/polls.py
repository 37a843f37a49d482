"""When to read the job list: when the jobs should be done, backing off after, never when sure to be early.

Each list call costs one request of twenty a day, so polls are timed to the jobs rather
than to a clock: the first comes when the slowest recently seen job of the types in
flight would be done (``createdAt`` to ``completedAt`` in the job list, kept per report
type in the state), or after ``poll_interval`` while nothing is known; each later one
waits twice as long as the one before. No poll is made before the quickest recent job
could have finished, and the last request of the budget waits for the expected time.
Pure arithmetic over monotonic seconds, and the clock (:class:`Clock`) a run keeps them by.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Clock:
    """The runner's sense of time: monotonic seconds and a way to wait (a test passes its own)."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


SYSTEM_CLOCK = Clock()


@dataclass
class PollSchedule:
    """The polls of one run; ``deadline`` is the monotonic time ``max_wait`` ends."""

    poll_interval: float
    deadline: float
    _submitted_at: float | None = None
    _expected: float = 0.0
    _earliest: float = 0.0
    _polled_at: float | None = None
    _polls_since: int = 0

    def submitted(self, at: float, durations: Iterable[float]) -> None:
        """A job was submitted at ``at``; ``durations`` are recent jobs' seconds of its report type."""
        # a job that took longer than this run can wait (collected hours later by another run) says
        # nothing of when to poll now: it must not hold every later run's last poll until max_wait
        seen = [seconds for seconds in durations if seconds <= self.deadline - at]
        expected = max(seen) if seen else self.poll_interval
        earliest = min(seen) if seen else 0.0
        if self._submitted_at is None or self._polls_since:
            self._expected, self._earliest = expected, earliest
        else:
            self._expected, self._earliest = max(self._expected, expected), max(self._earliest, earliest)
        self._submitted_at, self._polls_since = at, 0

    def expected_done(self) -> float | None:
        """When the latest submissions should be done (monotonic), by their type's recent jobs."""
        return None if self._submitted_at is None else self._submitted_at + self._expected

    def polled(self, at: float) -> None:
        self._polled_at = at
        self._polls_since += 1

    def next_at(self, now: float, *, last_request: bool) -> float:
        """When to make the next list call (never after the deadline)."""
        if self._submitted_at is None:  # only jobs of earlier runs in flight: they are due by now
            after = (self._polled_at or now) + self.poll_interval * 2 ** max(0, self._polls_since - 1)
            return min(after, self.deadline)
        if self._polls_since == 0:
            wanted = self._submitted_at + self._expected
        else:
            assert self._polled_at is not None
            wanted = self._polled_at + self.poll_interval * 2 ** (self._polls_since - 1)
        wanted = max(wanted, self._submitted_at + self._earliest)  # sure to be early before that
        if last_request:
            wanted = max(wanted, self._submitted_at + self._expected)
        return min(wanted, self.deadline)
