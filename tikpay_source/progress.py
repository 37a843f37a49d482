"""Telling a person what a run is doing: lively on a terminal, one plain line per step in CI logs."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _size(num_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if num_bytes < 1024 or unit == "GB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.1f} GB"


class Progress:
    """Step lines always; transfer progress redrawn in place on a TTY, in quarters otherwise."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None, quiet: bool = False) -> None:
        self._stream = stream or sys.stderr
        self._live = self._stream.isatty() if live is None else live
        self._quiet = quiet
        self._last_quarter = -1
        self._last_draw = 0.0

    def step(self, message: str) -> None:
        """One line for one thing that happened (a submission, a job done, a window loaded)."""
        if self._quiet:
            return
        if self._live:
            self._stream.write("\r\x1b[K")
        self._stream.write(f"tikpay: {message}\n")
        self._stream.flush()

    def transfer(self, label: str, done: int, total: int | None) -> None:
        """Bytes received so far for a download."""
        if self._quiet:
            return
        text = f"{label}: {_size(done)}" + (f" of {_size(total)}" if total else "")
        if self._live:
            now = time.monotonic()
            if now - self._last_draw > 0.2 or (total and done >= total):
                self._stream.write(f"\r\x1b[Ktikpay: {text}")
                self._stream.flush()
                self._last_draw = now
            return
        quarter = int(4 * done / total) if total else -1
        if total and quarter != self._last_quarter and quarter > 0:
            self._last_quarter = quarter
            self.step(text)

    def reset_transfer(self) -> None:
        """Start counting quarters afresh for the next download."""
        self._last_quarter = -1
        if self._live and not self._quiet:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
