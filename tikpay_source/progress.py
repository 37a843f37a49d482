"""Telling a person what a run is doing, through the ``tikpay`` logger.

The connector logs each step (a submission, a job done, a window loaded) at INFO on the
``tikpay`` logger, and a download's progress as records marked ``transfer``: one at
DEBUG per chunk, one at INFO per quarter of the file. Orchestrators capture the logger
like any other; :class:`ConsoleRenderer` is how the script shows it: a live line on a
terminal, one plain line per step in CI logs.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TextIO

from tikpay_source.api.polls import Clock
from tikpay_source.settings import LOGGER_NAME

log = logging.getLogger(LOGGER_NAME)
log.addHandler(logging.NullHandler())  # a library logs; the application decides what is shown

TRANSFER = "transfer"
"""Attribute set (True) on log records about a download's progress, or a wait's countdown."""
COUNTDOWN_STEP_SECONDS = 1.0


def size_text(num_bytes: float) -> str:
    """A byte count for people: 512 B, 1.5 MB."""
    for unit in ("B", "KB", "MB", "GB"):
        if num_bytes < 1024 or unit == "GB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.1f} GB"


def transfer_reporter(label: str) -> Callable[[int, int | None], None]:
    """A download progress callback that logs ``label``'s bytes: every chunk at DEBUG, quarters at INFO."""
    last_quarter = 0

    def report(done: int, total: int | None) -> None:
        nonlocal last_quarter
        text = f"{label}: {size_text(done)}" + (f" of {size_text(total)}" if total else "")
        log.debug("%s", text, extra={TRANSFER: True})
        quarter = int(4 * done / total) if total else 0
        if quarter > last_quarter:
            last_quarter = quarter
            log.info("%s", text, extra={TRANSFER: True})

    return report


def wait_for_poll(clock: Clock, until: float, jobs: int, expected: float | None = None) -> None:
    """Wait until the monotonic time ``until``, never silently: how many jobs run, when the next poll is.

    One line at INFO when the wait begins (what a CI log shows), then a countdown record at
    DEBUG every second (the live line on a terminal). ``expected`` is when the jobs should
    be done, by the report types' recent jobs.
    """
    start = clock.now()
    if until <= start:
        return
    wall = datetime.now().astimezone()
    at = (wall + timedelta(seconds=until - start)).strftime("%H:%M:%S")
    done = ""
    if expected is not None and expected > start:
        done = f"; expected done about {(wall + timedelta(seconds=expected - start)).strftime('%H:%M:%S')}"
    log.info(
        "%d job(s) running at Tikpay; next poll in %ds, at %s%s", jobs, math.ceil(until - start), at, done
    )
    while (left := until - clock.now()) > 0:
        log.debug("%d job(s) running; next poll in %ds", jobs, math.ceil(left), extra={TRANSFER: True})
        clock.sleep(min(left, COUNTDOWN_STEP_SECONDS))


class ConsoleRenderer(logging.Handler):
    """Renders ``tikpay`` records for a person: ``tikpay: <message>`` lines, a live transfer line on a TTY."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        super().__init__(logging.DEBUG)
        self._stream = stream or sys.stderr
        self.live = self._stream.isatty() if live is None else live
        self._last_draw = 0.0
        self._drawn = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if getattr(record, TRANSFER, False):
                self._transfer(message, record.levelno)
                return
            if record.levelno < logging.INFO:
                return
            if self._drawn:
                self._stream.write("\r\x1b[K")
                self._drawn = False
            self._stream.write(f"tikpay: {message}\n")
            self._stream.flush()
        except Exception:  # a broken stream must never break a load
            self.handleError(record)

    def _transfer(self, message: str, level: int) -> None:
        if not self.live:
            if level >= logging.INFO:
                self._stream.write(f"tikpay: {message}\n")
                self._stream.flush()
            return
        now = time.monotonic()
        if now - self._last_draw > 0.2 or level >= logging.INFO:
            self._stream.write(f"\r\x1b[Ktikpay: {message}")
            self._stream.flush()
            self._last_draw, self._drawn = now, True


def show_progress(
    stream: TextIO | None = None, *, quiet: bool = False, live: bool | None = None
) -> logging.Handler:
    """Attach a :class:`ConsoleRenderer` to the ``tikpay`` logger (warnings only when ``quiet``); returns it."""
    renderer = ConsoleRenderer(stream, live)
    if quiet:
        renderer.setLevel(logging.WARNING)
    log.addHandler(renderer)
    log.setLevel(logging.DEBUG if renderer.live and not quiet else logging.INFO)
    return renderer
