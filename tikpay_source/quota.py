"""The request ledger: a rolling record of the API calls made with one API key.

Tikpay allows 20 requests per 24 hours per key, and dlt state is only saved when an
extract finishes, so the record lives in its own append-only file, written *before*
each request goes out. A run that crashes still leaves its requests counted, and a
"wait until" learnt from a 429 stops every later run from knocking too early.

The file is named after a hash of the key, never the key itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tikpay_source.errors import ConfigError
from tikpay_source.settings import QUOTA_LIMIT, QUOTA_WINDOW_SECONDS

_KEEP_SECONDS = 8 * 24 * 3600  # a week of jobs plus a day: old lines are compacted away
_COMPACT_AFTER_LINES = 2000
_REQUEST_KINDS = frozenset({"submit", "list"})


def default_ledger_dir() -> Path:
    """``<dlt data dir>/tikpay``: beside dlt's own pipelines, shared by every pipeline of a key."""
    import dlt

    return Path(dlt.current.run_context().data_dir) / "tikpay"


def open_ledger(directory: Path | None, api_key: str) -> RequestLedger:
    """The ledger of ``api_key`` under ``directory`` (default :func:`default_ledger_dir`)."""
    where = directory or default_ledger_dir()
    try:
        return RequestLedger(where, api_key)
    except OSError as exc:
        raise ConfigError(f"ledger_dir {str(where)!r} cannot be used: {exc.strerror or exc}") from None


def key_fingerprint(api_key: str) -> str:
    """A short, irreversible name for an API key, safe to show and to use in a file name."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LedgerEntry:
    """One line of the ledger: a request sent (``kind`` submit or list), a run started, or a wait imposed."""

    at: float
    kind: str
    until: float | None = None
    detail: str | None = None


class RequestLedger:
    """Counts requests per API key over a rolling window and remembers imposed waits."""

    def __init__(
        self,
        directory: Path,
        api_key: str,
        *,
        limit: int = QUOTA_LIMIT,
        window_seconds: float = QUOTA_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._clock = clock
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"requests-{key_fingerprint(api_key)}.jsonl"
        self._entries = self._read()

    def _read(self) -> list[LedgerEntry]:
        if not self.path.exists():
            return []
        entries = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                raw = json.loads(line)
                entries.append(
                    LedgerEntry(float(raw["at"]), str(raw["kind"]), raw.get("until"), raw.get("detail"))
                )
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash mid-write is dropped, not fatal
        if len(entries) > _COMPACT_AFTER_LINES:
            entries = [e for e in entries if e.at > self._clock() - _KEEP_SECONDS]
            self._rewrite(entries)
        return entries

    def _rewrite(self, entries: list[LedgerEntry]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(self._line(e) for e in entries), encoding="utf-8")
        os.replace(tmp, self.path)

    @staticmethod
    def _line(entry: LedgerEntry) -> str:
        raw = {"at": round(entry.at, 3), "kind": entry.kind}
        if entry.until is not None:
            raw["until"] = round(entry.until, 3)
        if entry.detail:
            raw["detail"] = entry.detail
        return json.dumps(raw) + "\n"

    def _append(self, entry: LedgerEntry) -> None:
        with self.path.open("a+b") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell():  # a line torn by a crash must not swallow this one
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")
            handle.write(self._line(entry).encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        self._entries.append(entry)

    def record_request(self, kind: str, detail: str | None = None) -> None:
        """Write down a request before it is sent, so a crash cannot make it uncounted."""
        self._append(LedgerEntry(self._clock(), kind, detail=detail))

    def record_run(self, run_id: str) -> None:
        """Mark the start of a run, before its first request (not a request itself)."""
        self._append(LedgerEntry(self._clock(), "run", detail=run_id))

    def last_run_id(self) -> str | None:
        """The id of the latest run that started with this ledger."""
        return next((e.detail for e in reversed(self._entries) if e.kind == "run"), None)

    def record_wait(self, until: float) -> None:
        """Remember that the API told this key to wait until ``until`` (epoch seconds)."""
        self._append(LedgerEntry(self._clock(), "wait", until=until))

    def used(self) -> int:
        """Requests counted in the current rolling window."""
        since = self._clock() - self.window_seconds
        return sum(1 for e in self._entries if e.kind in _REQUEST_KINDS and e.at > since)

    def remaining(self) -> int:
        """Requests left in the rolling window, by this ledger's count."""
        return max(0, self.limit - self.used())

    def next_free_at(self) -> float | None:
        """When the oldest counted request leaves the window (None if none is counted)."""
        since = self._clock() - self.window_seconds
        recent = sorted(e.at for e in self._entries if e.kind in _REQUEST_KINDS and e.at > since)
        return recent[0] + self.window_seconds if recent else None

    def blocked_until(self) -> float | None:
        """The latest wait imposed by the API that has not yet passed."""
        now = self._clock()
        waits = [e.until for e in self._entries if e.kind == "wait" and e.until and e.until > now]
        return max(waits) if waits else None
