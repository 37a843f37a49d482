"""The request ledger: a rolling record of the API calls made with one API key.

Tikpay allows 20 requests per 24 hours per key, and dlt state is only saved when an
extract finishes, so the record lives apart from it, written *before* each request goes
out. A run that crashes still leaves its requests counted, and a "wait until" learnt
from a 429 stops every later run from knocking too early.

The rules are here (:class:`RequestLedger`); where the record lives is a
:class:`LedgerStore`: a file on this machine (:class:`LocalLedgerStore`, the default) or
the pipeline's destination, shared by every machine that loads into it (see
:mod:`tikpay_source.loading.shared_ledger`). Every store appends *only if nothing was
added since it last read* (a file lock, a primary key, an exclusive create), so counting
and reserving is one step however many processes share the key: together they never
spend more than the quota. A request that provably never left the machine is cancelled
(not counted).

The key itself is never stored: a store is named after, or its rows carry, a hash of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from filelock import FileLock, Timeout

from tikpay_source.errors import ConfigError, QuotaExhausted, TikpayError
from tikpay_source.settings import QUOTA_LIMIT, QUOTA_WINDOW_SECONDS

KEEP_SECONDS = 8 * 24 * 3600  # a week of jobs plus a day: older entries are compacted away
_COMPACT_AFTER_LINES = 2000
_REQUEST_KINDS = frozenset({"submit", "list"})
_LOCK_TIMEOUT_SECONDS = 60.0
_APPEND_ATTEMPTS = 50  # another process appending between our read and write: read again


def default_ledger_dir() -> Path:
    """``<dlt data dir>/tikpay``: beside dlt's own pipelines, shared by every pipeline of a key."""
    import dlt

    return Path(dlt.current.run_context().data_dir) / "tikpay"


def open_ledger(directory: Path | None, api_key: str) -> RequestLedger:
    """The local ledger of ``api_key`` under ``directory`` (default :func:`default_ledger_dir`)."""
    where = directory or default_ledger_dir()
    try:
        return RequestLedger(LocalLedgerStore(where, api_key))
    except OSError as exc:
        raise ConfigError(f"ledger_dir {str(where)!r} cannot be used: {exc.strerror or exc}") from None


def ledger_file(directory: Path | None, api_key: str) -> Path:
    """Where the local ledger of ``api_key`` lives under ``directory`` (default :func:`default_ledger_dir`)."""
    return (directory or default_ledger_dir()) / f"requests-{key_fingerprint(api_key)}.jsonl"


def key_fingerprint(api_key: str) -> str:
    """A short, irreversible name for an API key, safe to show and to use in a file name."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LedgerEntry:
    """One entry: a request sent (``kind`` submit or list, with an ``id``), a request cancelled
    (``cancel``, its ``detail`` the request's id), a run started (``run``), a wait imposed
    (``wait``), or a run lock taken (``lease``, until ``until``) or given back (``release``).

    ``seq`` is the entry's place in a shared store (None in the local file).
    """

    at: float
    kind: str
    until: float | None = None
    detail: str | None = None
    id: str | None = None
    seq: int | None = None


class LedgerStore(Protocol):
    """Where a key's entries live. ``append`` adds an entry only if ``after`` is still the last one."""

    where: str
    """For a person, after "in": "/root/.dlt/tikpay/requests-3f….jsonl", "postgres dataset tikpay_data (table _tikpay_ledger)"."""

    def now(self) -> float:
        """The store's clock (epoch seconds), without a round trip: a shared store keeps one clock
        for every machine (the database's, say) by the offset it learnt at its last read."""
        ...

    def read(self) -> list[LedgerEntry]:
        """Every entry of the last :data:`KEEP_SECONDS`, oldest first, read afresh."""
        ...

    def append(self, entry: LedgerEntry, after: LedgerEntry | None) -> bool:
        """Add ``entry`` if no entry was added since ``after`` (None: the store was empty); else False."""
        ...


class LocalLedgerStore:
    """The ledger as an append-only JSON-lines file, read and written under a file lock."""

    def __init__(
        self,
        directory: Path,
        api_key: str,
        *,
        clock: Callable[[], float] = time.time,
        lock_timeout: float = _LOCK_TIMEOUT_SECONDS,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = ledger_file(directory, api_key)
        self.where = str(self.path)
        self.now = clock
        self._lock = FileLock(str(self.path) + ".lock", timeout=lock_timeout)
        with self._locked():
            pass  # a folder we cannot lock in fails here, before any request

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

    def read(self) -> list[LedgerEntry]:
        with self._locked():
            return self._read()

    def append(self, entry: LedgerEntry, after: LedgerEntry | None) -> bool:
        with self._locked():
            entries = self._read()
            if (entries[-1] if entries else None) != after:
                return False
            self._append(entry)
            return True

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
        kept = [e for e in entries if e.at > self.now() - KEEP_SECONDS]
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
        """Add a line (call under the lock), durably, after a line a crash may have torn."""
        with self.path.open("a+b") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell():  # a line torn by a crash must not swallow this one
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")
            handle.write(self._line(entry).encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())


class RequestLedger:
    """Counts requests per API key over a rolling window and remembers imposed waits.

    Every question is answered from the entries read at the last write (or :meth:`refresh`),
    on the store's clock: a run asks several in a row, and a shared store is a round trip away.
    """

    def __init__(
        self, store: LedgerStore, *, limit: int = QUOTA_LIMIT, window_seconds: float = QUOTA_WINDOW_SECONDS
    ) -> None:
        self.store = store
        self.limit = limit
        self.window_seconds = window_seconds
        self._entries = store.read()

    @classmethod
    def local(
        cls,
        directory: Path,
        api_key: str,
        *,
        limit: int = QUOTA_LIMIT,
        window_seconds: float = QUOTA_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
        lock_timeout: float = _LOCK_TIMEOUT_SECONDS,
    ) -> RequestLedger:
        """The ledger in a file of ``directory`` (see :class:`LocalLedgerStore`)."""
        store = LocalLedgerStore(directory, api_key, clock=clock, lock_timeout=lock_timeout)
        return cls(store, limit=limit, window_seconds=window_seconds)

    @property
    def where(self) -> str:
        return self.store.where

    def refresh(self) -> None:
        """Read the store again: what other processes wrote since counts from now on."""
        self._entries = self.store.read()

    def append(
        self, make: Callable[[float], LedgerEntry], check: Callable[[], None] | None = None
    ) -> LedgerEntry:
        """Append the entry ``make(now)`` once ``check`` passes on a fresh read; read again on a race.

        ``check`` raises to refuse (the quota is spent, a lock is held); it sees the entries
        through this ledger's questions, read the moment before the write.
        """
        for _ in range(_APPEND_ATTEMPTS):
            self.refresh()
            if check is not None:
                check()
            last = self._entries[-1] if self._entries else None
            entry = make(self.store.now())
            if last is not None and last.seq is not None:
                entry = replace(entry, seq=last.seq + 1)
            elif last is None:
                entry = replace(entry, seq=0)
            if self.store.append(entry, last):
                self._entries.append(entry)
                return entry
        raise TikpayError(f"the request ledger in {self.where} kept changing under this run; try again")

    def reserve(self, kind: str, detail: str | None = None) -> str:
        """Count one request about to be sent, if the key's quota has room; return its id.

        The store is read afresh and the entry appended only if nothing came in between, so
        another process's requests count too. Raises :class:`QuotaExhausted` when the last
        24 hours already hold ``limit`` requests.
        """
        request_id = uuid.uuid4().hex[:16]
        self.append(lambda now: LedgerEntry(now, kind, detail=detail, id=request_id), self._check_room)
        return request_id

    def _check_room(self) -> None:
        if self.used() >= self.limit:
            raise self.quota_spent(
                f"this API key's 24-hour quota is spent by the request ledger in {self.where}: another run "
                "with the same key has used it"
            )

    def quota_spent(self, message: str) -> QuotaExhausted:
        """The stop for a spent quota, saying when its oldest counted request leaves the window."""
        free_at = self.next_free_at()
        return QuotaExhausted(message, datetime.fromtimestamp(free_at, timezone.utc) if free_at else None)

    def cancel(self, request_id: str) -> None:
        """A reserved request provably never left the machine (no connection was made): not counted."""
        self.append(lambda now: LedgerEntry(now, "cancel", detail=request_id))

    def record_run(self, run_id: str) -> None:
        """Mark the start of a run, before its first request (not a request itself)."""
        self.append(lambda now: LedgerEntry(now, "run", detail=run_id))

    def last_run_id(self) -> str | None:
        """The id of the latest run that started with this ledger."""
        return next((e.detail for e in reversed(self._entries) if e.kind == "run"), None)

    def record_wait(self, until: float) -> None:
        """Remember that the API told this key to wait until ``until`` (epoch seconds)."""
        self.append(lambda now: LedgerEntry(now, "wait", until=until))

    def add_entries(self, entries: list[LedgerEntry]) -> None:
        """Append copies of ``entries`` (another store's), keeping their times: a switch of store."""
        for entry in entries:
            self.append(lambda _now, e=entry: replace(e, seq=None))

    def entries(self) -> list[LedgerEntry]:
        """The entries as last read."""
        return list(self._entries)

    def _counted(self) -> list[float]:
        since = self.store.now() - self.window_seconds
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
        now = self.store.now()
        waits = [e.until for e in self._entries if e.kind == "wait" and e.until and e.until > now]
        return max(waits) if waits else None
