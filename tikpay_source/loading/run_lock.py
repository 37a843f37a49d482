"""One run of a pipeline at a time, on one machine or many.

Two runs of one pipeline at once would restore the same state, adopt the same finished
jobs and load their rows twice. So a run holds a lock for its whole ``pipeline.run``, taken
*before* dlt restores the state from the destination:

- with ``ledger = "local"``, a file lock beside the pipeline's folder; the operating system
  frees it when the process dies, however it dies;
- with ``ledger = "destination"``, a lease in the shared ledger (see
  :mod:`tikpay_source.loading.shared_ledger`), keyed by pipeline and dataset, which the
  holder renews every third of ``lock_lease`` from a thread: a killed run's lease frees
  itself once it runs out.

A second run waits up to ``lock_wait`` seconds, then stops with :class:`RunLocked` (exit 5)
and one line naming the holder: nothing of it was done, so nothing is lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from tikpay_source.api.ledger import LedgerEntry, RequestLedger
from tikpay_source.config import TikpayConfig
from tikpay_source.errors import RunLocked, TikpayError
from tikpay_source.loading.shared_ledger import open_run_ledger
from tikpay_source.settings import JOBS_TABLE, LEDGER_LOCAL, LOGGER_NAME

log = logging.getLogger(LOGGER_NAME)
LEASE = "lease"
RELEASE = "release"
_RETRY_SECONDS = 0.5


@dataclass(frozen=True)
class Holder:
    """Who holds a pipeline's lock: a process on a host, since when (epoch seconds)."""

    id: str
    host: str
    pid: int
    since: float

    def describe(self, pipeline: str) -> str:
        since = datetime.fromtimestamp(self.since, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"pipeline {pipeline} is being run by process {self.pid} on {self.host}, since {since}"


@contextlib.contextmanager
def run_lock(pipeline: Any, source: Any) -> Iterator[None]:
    """Hold ``pipeline``'s run lock while the block runs (``pipeline.run(source)``, say).

    Raises RunLocked when another run holds it for longer than the source's ``lock_wait``;
    ConfigError when ``ledger = "destination"`` cannot be kept in the destination.
    """
    config: TikpayConfig = source.resources[JOBS_TABLE].explicit_args["config"]
    name = pipeline.pipeline_name
    me = Holder(uuid.uuid4().hex[:16], socket.gethostname(), os.getpid(), time.time())
    if config.ledger == LEDGER_LOCAL:
        with _file_lock(Path(pipeline.pipelines_dir) / f"{name}.run.lock", name, me, config.lock_wait):
            yield
        return
    lease = Lease(open_run_ledger(config, pipeline), f"{name}/{pipeline.dataset_name}", me, config.lock_lease)
    lease.take(config.lock_wait)
    try:
        with lease.renewed():
            yield
    finally:
        lease.give_back()


@contextlib.contextmanager
def _file_lock(path: Path, name: str, me: Holder, wait: float) -> Iterator[None]:
    """The local run lock; beside it, a note of who holds it for the message of a run that waits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    note = path.with_suffix(".json")
    lock = FileLock(str(path), timeout=wait)
    try:
        lock.acquire()
    except Timeout:
        raise RunLocked(_locked_line(_read_note(note), name, wait)) from None
    try:
        note.write_text(json.dumps({"host": me.host, "pid": me.pid, "since": me.since}), encoding="utf-8")
        yield
    finally:
        lock.release()


def _read_note(note: Path) -> Holder | None:
    try:
        raw = json.loads(note.read_text(encoding="utf-8"))
        return Holder("", str(raw["host"]), int(raw["pid"]), float(raw["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _locked_line(holder: Holder | None, name: str, wait: float) -> str:
    who = holder.describe(name) if holder else f"pipeline {name} is being run by another process"
    return f"{who}; waited {wait:g} s (lock_wait); run again once it has finished"


class _Held(TikpayError):
    def __init__(self, holder: Holder) -> None:
        super().__init__(holder.id)
        self.holder = holder


class Lease:
    """A run lock kept as ``lease`` and ``release`` entries of the shared ledger."""

    def __init__(self, ledger: RequestLedger, key: str, me: Holder, seconds: float) -> None:
        self.ledger = ledger
        self.key = key
        self.me = me
        self.seconds = seconds
        self.lost = False

    def holder(self) -> Holder | None:
        """Who holds the lease by the entries last read: the latest lease that has not run out."""
        now = self.ledger.store.now()
        for entry in reversed(self.ledger.entries()):
            if entry.kind not in (LEASE, RELEASE):
                continue
            about = json.loads(entry.detail or "{}")
            if about.get("key") != self.key:
                continue
            if entry.kind == RELEASE or (entry.until or 0) <= now:
                return None
            return Holder(
                entry.id or "", str(about.get("host")), int(about.get("pid", 0)), float(about["since"])
            )
        return None

    def _not_held_by_another(self) -> None:
        holder = self.holder()
        if holder is not None and holder.id != self.me.id:
            raise _Held(holder)

    def _write(self, kind: str) -> None:
        about = {"key": self.key, "host": self.me.host, "pid": self.me.pid, "since": self.me.since}
        until = self.seconds if kind == LEASE else None
        self.ledger.append(
            lambda now: LedgerEntry(
                now, kind, until=now + until if until else None, detail=json.dumps(about), id=self.me.id
            ),
            self._not_held_by_another,
        )

    def take(self, wait: float) -> None:
        """Hold the lease, waiting up to ``wait`` seconds for another holder's to end or run out."""
        deadline = time.monotonic() + wait
        while True:
            try:
                self._write(LEASE)
                return
            except _Held as held:
                if time.monotonic() >= deadline:
                    raise RunLocked(_locked_line(held.holder, self.key.split("/")[0], wait)) from None
            time.sleep(min(_RETRY_SECONDS, max(0.0, deadline - time.monotonic())))

    @contextlib.contextmanager
    def renewed(self) -> Iterator[None]:
        """Renew the lease every third of its length while the block runs."""
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.seconds / 3):
                try:
                    self._write(LEASE)
                except _Held as held:
                    self.lost = True
                    log.error("the run lock of %s was taken over by process %s on %s: its lease ran out "
                              "(is lock_lease too short?)", self.key, held.holder.pid, held.holder.host)  # fmt: skip
                    return
                except Exception as exc:  # a network blip: the next renewal tries again
                    log.warning("could not renew the run lock of %s: %s", self.key, exc)

        thread = threading.Thread(target=renew, name="tikpay-run-lock", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def give_back(self) -> None:
        """End the lease now, so the next run need not wait for it to run out."""
        if self.lost:
            return
        try:
            self._write(RELEASE)
        except Exception as exc:  # it runs out by itself
            log.warning("could not give back the run lock of %s (it frees itself): %s", self.key, exc)
