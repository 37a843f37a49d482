"""The request ledger: a rolling record of the API calls made with one API key.

Tikpay allows 20 requests per 24 hours per key, and dlt state is only saved when an
extract finishes, so the record lives in its own append-only file, written *before*
each request goes out. A run that crashes still leaves its requests counted, and a
"wait until" learnt from a 429 stops every later run from knocking too early.

Several processes may share a key (two pipelines, or a manual run beside the scheduled
one), so every read and write happens under a file lock, and :meth:`RequestLedger.reserve`
counts the file afresh before each request: together they never spend more than the
quota. A request that provably never left the machine is cancelled (not counted).

The file is named after a hash of the key, never the key itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from tikpay_source.errors import ConfigError, QuotaExhausted, TikpayError
from tikpay_source.settings import QUOTA_LIMIT, QUOTA_WINDOW_SECONDS

_KEEP_SECONDS = 8 * 24 * 3600  # a week of jobs plus a day: old lines are compacted away
_COMPACT_AFTER_LINES = 2000
_REQUEST_KINDS = frozenset({"submit", "list"})
_LOCK_TIMEOUT_SECONDS = 60.0


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


def ledger_file(directory: Path | None, api_key: str) -> Path:
    """Where the ledger of ``api_key`` lives under ``directory`` (default :func:`default_ledger_dir`)."""
    return (directory or default_ledger_dir()) / f"requests-{key_fingerprint(api_key)}.jsonl"


def key_fingerprint(api_key: str) -> str:
    """A short, irreversible name for an API key, safe to show and to use in a file name."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LedgerEntry:
    """One line: a request sent (``kind`` submit or list, with an ``id``), a request cancelled
    (``cancel``, its ``detail`` the request's id), a run started, or a wait imposed."""

    at: float
    kind: str
    until: float | None = None
    detail: str | None = None
    id: str | None = None


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
        lock_timeout: float = _LOCK_TIMEOUT_SECONDS,
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._clock = clock
        directory.mkdir(parents=True, exist_ok=True)
        self.path = ledger_file(directory, api_key)
        self._lock = FileLock(str(self.path) + ".lock", timeout=lock_timeout)
        with self._locked():
            self._entries = self._read()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the ledger's lock; another process holding it too long is an error of the run."""
        try:
            with self._lock:
                yield
        except Timeout:
            raise TikpayError(
                f"the request ledger {self.path.name} stayed locked by another run for "
                f"{self._lock.timeout:g} s; is a run of the same API key stuck?"
            ) from None

    def _read(self) -> list[LedgerEntry]:
        """Every line of the file (call under the lock); compacts a long file, keeping the last week."""
        if not self.path.exists():
            return []
        entries = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                raw = json.loads(line)
                entries.append(
                    LedgerEntry(
                        float(raw["at"]), str(raw["kind"]), raw.get("until"), raw.get("detail"), raw.get("id")
                    )
                )
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash mid-write is dropped, not fatal
        kept = [e for e in entries if e.at > self._clock() - _KEEP_SECONDS]
        if len(entries) > _COMPACT_AFTER_LINES and len(kept) < len(entries):
            self._rewrite(kept)
            return kept
        return entries

    def _rewrite(self, entries: list[LedgerEntry]) -> None:
        """Replace the file whole (under the lock), durably: a power cut leaves the old or the new one."""
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write("".join(self._line(e) for e in entries))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    @staticmethod
    def _line(entry: LedgerEntry) -> str:
        raw: dict[str, object] = {"at": round(entry.at, 3), "kind": entry.kind}
        if entry.until is not None:
            raw["until"] = round(entry.until, 3)
        if entry.detail:
            raw["detail"] = entry.detail
        if entry.id:
            raw["id"] = entry.id
        return json.dumps(raw) + "\n"

    def _append(self, entry: LedgerEntry) -> None:
        """Add a line (call under the lock, after :meth:`_read` has taken in what others wrote)."""
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

    def _write(self, entry: LedgerEntry) -> None:
        with self._locked():
            self._entries = self._read()
            self._append(entry)

    def reserve(self, kind: str, detail: str | None = None) -> str:
        """Count one request about to be sent, if the key's quota has room; return its id.

        The file is read afresh under the lock, so another process's requests count too.
        Raises :class:`QuotaExhausted` when the last 24 hours already hold ``limit`` requests.
        """
        with self._locked():
            self._entries = self._read()
            if self.used() >= self.limit:
                free_at = self.next_free_at()
                retry_at = datetime.fromtimestamp(free_at, timezone.utc) if free_at else None
                raise QuotaExhausted(
                    "this API key's 24-hour quota is spent by the local ledger (another run with the same key?)",
                    retry_at,
                )
            request_id = uuid.uuid4().hex[:16]
            self._append(LedgerEntry(self._clock(), kind, detail=detail, id=request_id))
            return request_id

    def cancel(self, request_id: str) -> None:
        """A reserved request provably never left the machine (no connection was made): not counted."""
        self._write(LedgerEntry(self._clock(), "cancel", detail=request_id))

    def record_run(self, run_id: str) -> None:
        """Mark the start of a run, before its first request (not a request itself)."""
        self._write(LedgerEntry(self._clock(), "run", detail=run_id))

    def last_run_id(self) -> str | None:
        """The id of the latest run that started with this ledger."""
        return next((e.detail for e in reversed(self._entries) if e.kind == "run"), None)

    def record_wait(self, until: float) -> None:
        """Remember that the API told this key to wait until ``until`` (epoch seconds)."""
        self._write(LedgerEntry(self._clock(), "wait", until=until))

    def _counted(self) -> list[float]:
        since = self._clock() - self.window_seconds
        cancelled = {e.detail for e in self._entries if e.kind == "cancel"}
        return sorted(
            e.at for e in self._entries if e.kind in _REQUEST_KINDS and e.at > since and e.id not in cancelled
        )

    def used(self) -> int:
        """Requests counted in the current rolling window."""
        return len(self._counted())

    def remaining(self) -> int:
        """Requests left in the rolling window, by this ledger's count."""
        return max(0, self.limit - self.used())

    def next_free_at(self) -> float | None:
        """When the oldest counted request leaves the window (None if none is counted)."""
        recent = self._counted()
        return recent[0] + self.window_seconds if recent else None

    def blocked_until(self) -> float | None:
        """The latest wait imposed by the API that has not yet passed."""
        now = self._clock()
        waits = [e.until for e in self._entries if e.kind == "wait" and e.until and e.until > now]
        return max(waits) if waits else None
