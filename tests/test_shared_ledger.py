"""The request ledger and run lock in the destination: DuckDB, PostgreSQL, a folder and S3 (moto's server).

Several "machines" (each its own pipeline folder and ledger object) race for the same
slots of one store: the quota is never passed, the key is never stored, a lock has one
holder, and a store that cannot be used is one line before any request.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import dlt
import pytest
from warehouses import FilesystemWarehouse, Warehouse

from tikpay_source import RunLocked
from tikpay_source.api.ledger import RequestLedger, key_fingerprint
from tikpay_source.config import TikpayConfig, build_config
from tikpay_source.errors import ConfigError, QuotaExhausted
from tikpay_source.loading.run_lock import Holder, Lease
from tikpay_source.loading.shared_ledger import open_run_ledger
from tikpay_source.settings import LEDGER_TABLE, QUOTA_LIMIT

pytestmark = pytest.mark.warehouses("duckdb", "postgres", "filesystem", "s3")
KEY = "key-of-the-shared-ledger-tests"


def shared_config(tmp_path: Path, **settings: object) -> TikpayConfig:
    return build_config(
        client_id="id", client_secret="secret", api_key=KEY, ledger="destination",
        ledger_dir=str(tmp_path / "local-ledger"), **settings,
    )  # fmt: skip


def machine(warehouse: Warehouse, tmp_path: Path, name: str) -> object:
    """A pipeline of its own folder (another machine) loading into ``warehouse``."""
    return dlt.pipeline(
        "shared", destination=warehouse.destination(), dataset_name=warehouse.dataset,
        pipelines_dir=str(tmp_path / name),
    )  # fmt: skip


def stored_text(warehouse: Warehouse) -> str:
    """Everything the ledger put in the destination, as text."""
    if isinstance(warehouse, FilesystemWarehouse):
        fs = warehouse.filesystem()
        found = fs.find(f"{warehouse.folder}/{LEDGER_TABLE}")
        return " ".join(found) + " " + " ".join(fs.cat(p).decode() for p in found)
    return repr(warehouse.query(f"SELECT * FROM {LEDGER_TABLE}"))


def test_machines_racing_for_the_last_requests_take_exactly_the_quota(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    config = shared_config(tmp_path)
    ledgers = [open_run_ledger(config, machine(warehouse, tmp_path, f"m{i}")) for i in range(4)]
    taken: list[str] = []
    refused: list[int] = []

    def spend(ledger: RequestLedger) -> None:
        while True:
            try:
                taken.append(ledger.reserve("submit", detail="TRIPS"))
            except QuotaExhausted:
                refused.append(1)
                return

    threads = [threading.Thread(target=spend, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(taken) == QUOTA_LIMIT == len(set(taken)) and len(refused) == 4
    late = open_run_ledger(config, machine(warehouse, tmp_path, "late"))
    assert late.used() == QUOTA_LIMIT and late.remaining() == 0
    seqs = [e.seq for e in late.entries()]
    assert seqs == sorted(set(seqs))
    text = stored_text(warehouse)
    assert KEY not in text and key_fingerprint(KEY) in text


def test_a_cancelled_request_and_a_wait_are_seen_by_every_machine(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    config = shared_config(tmp_path)
    one, two = (open_run_ledger(config, machine(warehouse, tmp_path, n)) for n in ("one", "two"))
    first = one.reserve("list")
    one.reserve("submit")
    one.cancel(first)
    until = one.store.now() + 3600
    one.record_wait(until)
    one.record_run("run-1")
    two.refresh()
    assert two.used() == 1 and two.last_run_id() == "run-1"
    assert two.blocked_until() == pytest.approx(until, abs=0.01)


def test_switching_from_local_carries_the_last_day_over_once(warehouse: Warehouse, tmp_path: Path) -> None:
    local = RequestLedger.local(tmp_path / "local-ledger", KEY)
    for _ in range(3):
        local.reserve("submit")
    config = shared_config(tmp_path)
    pipeline = machine(warehouse, tmp_path, "laptop")

    assert open_run_ledger(config, pipeline).used() == 3
    assert open_run_ledger(config, pipeline).used() == 3  # not carried twice
    local.reserve("list")  # a local run after the switch is carried over too
    assert open_run_ledger(config, pipeline).used() == 4
    # one in the very millisecond of the last carry (the file keeps milliseconds) is carried too
    lines = local.store.path.read_text().splitlines()
    mark = json.loads(lines[-1])
    assert mark["kind"] == "carried"
    local.store.path.write_text("\n".join([*lines, json.dumps({"at": mark["at"], "kind": "submit"})]) + "\n")
    assert open_run_ledger(config, pipeline).used() == 5


def test_a_lock_has_one_holder_and_a_lapsed_lease_frees_itself(warehouse: Warehouse, tmp_path: Path) -> None:
    config = shared_config(tmp_path)
    holder = Holder("first", "ci-runner", 4242, time.time())
    first = Lease(open_run_ledger(config, machine(warehouse, tmp_path, "a")), "shared/x", holder, seconds=1.5)
    first.take(wait=0)
    second = Lease(
        open_run_ledger(config, machine(warehouse, tmp_path, "b")),
        "shared/x",
        Holder("second", "laptop", 7, 0.0),
        60,
    )
    with pytest.raises(
        RunLocked, match=r"pipeline shared is being run by process 4242 on ci-runner, since .* UTC"
    ):
        second.take(wait=0.2)
    other = Lease(second.ledger, "shared/y", second.me, 60)
    other.take(wait=0)  # another pipeline or dataset has a lock of its own
    second.take(wait=5)  # the first lease lapses after 1.5 s: no release needed
    with pytest.raises(RunLocked):
        first.take(wait=0)
    second.give_back()
    first.take(wait=0)


@pytest.mark.warehouses("duckdb")
def test_a_destination_that_cannot_hold_the_ledger_is_one_line(tmp_path: Path) -> None:
    pipeline = dlt.pipeline("shared", destination=dlt.destinations.dummy(), pipelines_dir=str(tmp_path))
    with pytest.raises(ConfigError) as refused:
        open_run_ledger(shared_config(tmp_path), pipeline)
    assert str(refused.value) == (
        'ledger "destination" is not supported on dummy; it is on duckdb, motherduck, postgres and '
        'filesystem (or use ledger "local")'
    )


@pytest.mark.warehouses("postgres")
def test_an_unreachable_database_is_one_line(tmp_path: Path, warehouse: Warehouse) -> None:
    pipeline = dlt.pipeline(
        "shared", destination=dlt.destinations.postgres("postgresql://tikpay:secret-pw@127.0.0.1:9/none"),
        pipelines_dir=str(tmp_path),
    )  # fmt: skip
    with pytest.raises(ConfigError) as refused:
        open_run_ledger(shared_config(tmp_path), pipeline)
    line = str(refused.value)
    assert line.startswith("the request ledger in postgres dataset ") and "\n" not in line
    assert "secret-pw" not in line
