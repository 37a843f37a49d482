"""The request ledger in the pipeline's destination: one count for every machine that loads into it.

With ``ledger = "destination"`` the ledger of :mod:`tikpay_source.api.ledger` lives where
the pipeline's state lives, so a CI runner that starts empty every day, a laptop and two
workers all count the same requests. Its entries are numbered; an entry is added only in
the slot after the last one read, and a slot can be taken once:

- **SQL destinations** (DuckDB, MotherDuck, PostgreSQL): a table ``_tikpay_ledger`` in the
  dataset whose primary key is (key fingerprint, slot); ``INSERT … ON CONFLICT DO NOTHING``
  takes a slot or finds it taken. Times are the database's clock, so machines whose clocks
  disagree still agree on the last 24 hours.
- **filesystem** (a folder, S3, GCS, Azure): one small JSON object per entry under
  ``<dataset>/_tikpay_ledger/<key fingerprint>/``, written with an exclusive create (S3's
  ``If-None-Match: *``, ``O_EXCL`` in a folder). Times are the writer's clock.

A slot taken by another process means it wrote in between: the ledger reads again and
decides again (see :meth:`RequestLedger.append`). The key is never stored, only its
fingerprint; no secret goes in. Switching from ``local`` carries the local file's last 24
hours over once.
"""

from __future__ import annotations

import json
import posixpath
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from tikpay_source.api.ledger import (
    KEEP_SECONDS,
    LedgerEntry,
    RequestLedger,
    key_fingerprint,
    ledger_file,
    open_ledger,
)
from tikpay_source.config import TikpayConfig
from tikpay_source.errors import ConfigError
from tikpay_source.loading.destinations import OBJECTS, SQL, DestinationProfile, profile_of
from tikpay_source.settings import LEDGER_LOCAL, LEDGER_TABLE, QUOTA_WINDOW_SECONDS

CARRIED = "carried"
"""A local-file entry: its entries up to here were carried into a shared ledger (``detail`` names it)."""
_CARRIED_KINDS = frozenset({"submit", "list", "cancel", "wait"})
_BUSY_SECONDS = 30.0
_TORN_RETRIES = 40
_ONE_AT_A_TIME = threading.Lock()  # one connection of this process at a time (DuckDB's file allows no more)


def open_run_ledger(config: TikpayConfig, pipeline: Any | None) -> RequestLedger:
    """The ledger a run of ``pipeline`` counts its requests in, by the ``ledger`` setting.

    Raises ConfigError (one line) where the destination cannot hold it or cannot be reached,
    before any request is sent.
    """
    if config.ledger == LEDGER_LOCAL:
        return open_ledger(config.ledger_dir, config.credentials.api_key)
    if pipeline is None:
        raise ConfigError('ledger "destination" needs a pipeline: run the source with pipeline.run')
    profile = profile_of(pipeline.destination)
    fingerprint = key_fingerprint(config.credentials.api_key)
    ledger = RequestLedger(destination_store(pipeline, profile, fingerprint))
    carry_local_over(ledger, config)
    return ledger


def destination_store(
    pipeline: Any, profile: DestinationProfile, fingerprint: str
) -> SqlLedgerStore | ObjectLedgerStore:
    """The store of a key's ledger in ``pipeline``'s destination; ConfigError where there is none."""
    if profile.shared_ledger is None:
        raise ConfigError(
            f'ledger "destination" is not supported on {profile.name}; it is on duckdb, motherduck, '
            'postgres and filesystem (or use ledger "local")'
        )
    where = ledger_location(pipeline, profile)
    with unusable_as_config(where, "be opened"):
        if profile.shared_ledger == SQL:
            return SqlLedgerStore(pipeline.sql_client, fingerprint, where)
        client = pipeline.destination_client()
        folder = posixpath.join(client.dataset_path, LEDGER_TABLE, fingerprint)
        return ObjectLedgerStore(client.fs_client, folder, where)


def ledger_location(pipeline: Any, profile: DestinationProfile) -> str:
    """Where the shared ledger of ``pipeline`` is, for a person (after "in"); no connection is made."""
    if profile.shared_ledger == OBJECTS:
        bucket_url = pipeline.destination.configuration(None, accept_partial=True).bucket_url
        return f"{str(bucket_url).rstrip('/')}/{pipeline.dataset_name}/{LEDGER_TABLE}/"
    return f"{profile.name} dataset {pipeline.dataset_name} (table {LEDGER_TABLE})"


def ledger_where(config: TikpayConfig, pipeline: Any) -> str:
    """Where a run of ``pipeline`` with ``config`` counts its requests; no connection is made."""
    if config.ledger == LEDGER_LOCAL:
        return str(ledger_file(config.ledger_dir, config.credentials.api_key))
    return ledger_location(pipeline, profile_of(pipeline.destination))


def carry_local_over(ledger: RequestLedger, config: TikpayConfig) -> None:
    """Copy the local file's requests of the last 24 hours into ``ledger``, once per file.

    What is owed is what came after the file's last ``carried`` mark, by place in the file,
    not by time (a request in the mark's millisecond counts). The mark goes in only if
    nothing was added to the file since it was read; else what came in is carried too.
    A crash between the copy and the mark copies them again next time: counted twice,
    never missed, which errs on the side of the quota.
    """
    path = ledger_file(config.ledger_dir, config.credentials.api_key)
    if not path.exists():
        return
    local = open_ledger(config.ledger_dir, config.credentials.api_key).store
    carried: list[LedgerEntry] = []
    while True:
        entries = local.read()  # in the order they were written
        marks = [i for i, e in enumerate(entries) if e.kind == CARRIED]
        since = local.now() - QUOTA_WINDOW_SECONDS
        owed = [
            e
            for e in entries[marks[-1] + 1 if marks else 0 :]
            if e.kind in _CARRIED_KINDS and e.at > since and e not in carried
        ]
        if owed:
            ledger.add_entries(owed)
            carried += owed
        mark = LedgerEntry(local.now(), CARRIED, detail=ledger.where)
        if local.append(mark, entries[-1] if entries else None):
            return


@contextmanager
def unusable_as_config(where: str, action: str) -> Iterator[None]:
    """A store's own error (a dropped connection, a refused write) as one line: no request goes out."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as exc:  # the driver's or the file system's own error
        raise ConfigError(f"the request ledger in {where} could not {action}: {first_line(exc)}") from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class SqlLedgerStore:
    """A key's ledger as rows of ``_tikpay_ledger`` in the dataset, on the database's clock."""

    def __init__(self, connect: Callable[[], Any], fingerprint: str, where: str) -> None:
        self._connect = connect
        self._key = fingerprint
        self._offset = 0.0  # the database's clock minus this machine's, learnt at each read
        self._compacted = False
        with self._client() as client:
            self._table = client.make_qualified_table_name(LEDGER_TABLE)
            self.where = where
            self._create(client)
            self._learn_clock(client)

    @contextmanager
    def _client(self) -> Iterator[Any]:
        """A connection for one step. DuckDB lets one process at a time open its file, so a step
        waits (up to :data:`_BUSY_SECONDS`) while another process has it, and threads take turns."""
        deadline = time.monotonic() + _BUSY_SECONDS
        with _ONE_AT_A_TIME:
            while True:
                try:
                    client = self._connect()
                    client.open_connection()
                    break
                except Exception as exc:
                    if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            try:
                yield client
            finally:
                client.close_connection()

    def _create(self, client: Any) -> None:
        """The dataset and the table, if missing; two machines creating them at once is fine."""
        for attempt in range(3):
            try:
                if not client.has_dataset():
                    client.create_dataset()
                client.execute_sql(
                    f"CREATE TABLE IF NOT EXISTS {self._table} (key_fingerprint VARCHAR(64) NOT NULL, "
                    "seq BIGINT NOT NULL, recorded_at DOUBLE PRECISION NOT NULL, kind VARCHAR(16) NOT NULL, "
                    "request_id VARCHAR(64), until_at DOUBLE PRECISION, detail VARCHAR(512), "
                    "PRIMARY KEY (key_fingerprint, seq))"
                )
                return
            except Exception:  # another machine created them between our check and our CREATE
                if attempt == 2:
                    raise

    def _learn_clock(self, client: Any) -> None:
        before = time.time()
        ((db_now,),) = client.execute_sql(
            "SELECT CAST(extract(epoch FROM current_timestamp) AS DOUBLE PRECISION)"
        )
        self._offset = float(db_now) - (before + time.time()) / 2

    def now(self) -> float:
        return time.time() + self._offset

    def read(self) -> list[LedgerEntry]:
        with unusable_as_config(self.where, "read"), self._client() as client:
            self._learn_clock(client)
            since = self.now() - KEEP_SECONDS
            if not self._compacted:  # the newest entry stays: it holds the next slot's number
                client.execute_sql(
                    f"DELETE FROM {self._table} WHERE key_fingerprint = %s AND recorded_at < %s AND seq < "
                    f"(SELECT max(seq) FROM {self._table} WHERE key_fingerprint = %s)",
                    self._key, since, self._key,
                )  # fmt: skip
                self._compacted = True
            rows = client.execute_sql(
                f"SELECT seq, recorded_at, kind, until_at, detail, request_id FROM {self._table} "
                "WHERE key_fingerprint = %s ORDER BY seq",
                self._key,
            )
        return [
            LedgerEntry(at, kind, until, detail, request_id, seq)
            for seq, at, kind, until, detail, request_id in rows
        ]

    def append(self, entry: LedgerEntry, after: LedgerEntry | None) -> bool:
        with unusable_as_config(self.where, "write"), self._client() as client:
            try:
                taken = client.execute_sql(
                    f"INSERT INTO {self._table} (key_fingerprint, seq, recorded_at, kind, request_id, until_at, "
                    "detail) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING seq",
                    self._key, entry.seq, entry.at, entry.kind, entry.id, entry.until,
                    (entry.detail or "")[:512] or None,
                )  # fmt: skip
            except Exception:  # DuckDB reports a slot taken by a concurrent transaction as a conflict
                owner = client.execute_sql(
                    f"SELECT recorded_at, kind FROM {self._table} WHERE key_fingerprint = %s AND seq = %s",
                    self._key, entry.seq,
                )  # fmt: skip
                if not owner:
                    raise
                return False
        return bool(taken)


class ObjectLedgerStore:
    """A key's ledger as one JSON object per entry in a folder of the bucket, each created exclusively."""

    def __init__(self, fs: Any, folder: str, where: str, clock: Callable[[], float] = time.time) -> None:
        self._fs = fs
        self._local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
        self._folder = folder.rstrip("/")
        self.where = where
        self.now = clock
        self._seen: dict[str, LedgerEntry] = {}  # entries never change: each object is read once
        self._compacted = False
        self._fs.makedirs(self._folder, exist_ok=True)
        self._names()  # an unreachable bucket fails here, before any request

    def _names(self) -> list[str]:
        try:
            listed = self._fs.ls(self._folder, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        return sorted(name for name in listed if name.endswith(".json"))

    def read(self) -> list[LedgerEntry]:
        with unusable_as_config(self.where, "read"):
            names = self._names()
            self._read_new([name for name in names if name not in self._seen])
            entries = [self._seen[name] for name in names]
            if not self._compacted and len(entries) > 1:
                old = [
                    n
                    for n, e in zip(names[:-1], entries[:-1], strict=True)
                    if e.at < self.now() - KEEP_SECONDS
                ]
                if old:
                    self._fs.rm(old)
                self._compacted = True
        return entries

    def _read_new(self, names: list[str]) -> None:
        """Read objects not seen yet. In a folder an object is created empty, then written: one still
        being written is read again, and one left torn by a crash counts as a request (the safe side)."""
        for attempt in range(_TORN_RETRIES + 1):
            torn = []
            for name, body in self._fs.cat(names).items() if names else ():
                try:
                    self._seen[name] = self._entry(name, body)
                except (ValueError, KeyError, TypeError):
                    torn.append(name)
            if not torn:
                return
            if attempt == _TORN_RETRIES:
                for name in torn:
                    seq = int(posixpath.basename(name).removesuffix(".json"))
                    self._seen[name] = LedgerEntry(self.now(), "submit", id=f"torn-{seq}", seq=seq)
                return
            names = torn
            time.sleep(0.05)

    @staticmethod
    def _entry(name: str, body: bytes) -> LedgerEntry:
        raw = json.loads(body)
        seq = int(posixpath.basename(name).removesuffix(".json"))
        return LedgerEntry(
            float(raw["at"]), str(raw["kind"]), raw.get("until"), raw.get("detail"), raw.get("id"), seq
        )

    def append(self, entry: LedgerEntry, after: LedgerEntry | None) -> bool:
        fields = {k: v for k, v in asdict(entry).items() if v is not None and k != "seq"}
        path = f"{self._folder}/{entry.seq:012d}.json"
        body = json.dumps(fields).encode()
        with unusable_as_config(self.where, "write"):
            try:
                if self._local:  # fsspec's pipe_file checks, then writes: only O_EXCL is one step here
                    with self._fs.open(path, "xb") as handle:
                        handle.write(body)
                else:  # S3's If-None-Match: *
                    self._fs.pipe_file(path, body, mode="create")
            except FileExistsError:
                return False
        return True
