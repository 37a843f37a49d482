"""RequestLedger: a per-key rolling request count that persists on disk and never holds the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from filelock import FileLock

from tikpay_source.api.client import TikpayClient
from tikpay_source.api.ledger import RequestLedger, key_fingerprint
from tikpay_source.config import Credentials
from tikpay_source.errors import TikpayError
from tikpay_source.planning.budget import RequestBudget
from tikpay_source.sandbox import DEMO_API_KEY, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox

KEY = "tikpay-live-key-3c9e7a1f0b"
WINDOW = 1000.0


class FakeClock:
    """A settable epoch clock for the ledger's ``clock=`` injection point."""

    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ledger_at(directory: Path, clock: FakeClock, key: str = KEY, limit: int = 5) -> RequestLedger:
    """A ledger for ``key`` in ``directory`` with a short window and the given clock."""
    return RequestLedger.local(directory, key, limit=limit, window_seconds=WINDOW, clock=clock)


def test_counts_survive_a_new_instance(tmp_path: Path) -> None:
    """Requests written by one ledger are counted by a fresh one reading the same directory."""
    clock = FakeClock()
    first = ledger_at(tmp_path, clock)
    first.reserve("submit", detail="TAPS 2025-03-01")
    first.reserve("list")
    first.reserve("list")
    again = ledger_at(tmp_path, clock)
    assert again.used() == 3
    assert again.remaining() == 2
    assert again.store.path == first.store.path


def test_keys_have_separate_ledgers(tmp_path: Path) -> None:
    """Two API keys in one directory do not share a count."""
    clock = FakeClock()
    ledger_at(tmp_path, clock).reserve("list")
    other = ledger_at(tmp_path, clock, key="another-key")
    assert other.used() == 0
    assert other.store.path != ledger_at(tmp_path, clock).store.path


def test_rolling_window_drops_old_entries(tmp_path: Path) -> None:
    """Requests leave the count exactly one window after they were made."""
    clock = FakeClock(1_000.0)
    ledger = ledger_at(tmp_path, clock)
    ledger.reserve("list")
    clock.now = 1_500.0
    ledger.reserve("submit")
    clock.now = 1_999.0
    assert ledger.used() == 2
    clock.now = 2_000.0  # the first request is now exactly one window old
    assert ledger.used() == 1
    assert ledger.remaining() == 4
    clock.now = 2_500.0
    assert ledger.used() == 0
    assert ledger_at(tmp_path, clock).used() == 0


def test_remaining_never_negative(tmp_path: Path) -> None:
    """More requests than the limit (written under a larger one) leave zero remaining, not a negative number."""
    clock = FakeClock()
    writer = ledger_at(tmp_path, clock, limit=3)
    for _ in range(3):
        writer.reserve("list")
    ledger = ledger_at(tmp_path, clock, limit=2)
    assert ledger.used() == 3
    assert ledger.remaining() == 0


def test_file_name_and_content_never_hold_the_key(tmp_path: Path) -> None:
    """The ledger file is named by a fingerprint and its lines never contain the API key."""
    clock = FakeClock()
    ledger = ledger_at(tmp_path, clock)
    ledger.reserve("submit", detail="{'reportType': 'TAPS'}")
    ledger.record_wait(clock.now + 60)
    assert KEY not in ledger.store.path.name
    assert key_fingerprint(KEY) in ledger.store.path.name
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ledger.store.path.name,
        ledger.store.path.name + ".lock",
    ]
    text = ledger.store.path.read_text(encoding="utf-8")
    assert KEY not in text
    assert [json.loads(line)["kind"] for line in text.splitlines()] == ["submit", "wait"]


def test_client_ledger_never_holds_the_key(sandbox: Sandbox, tmp_path: Path) -> None:
    """A real client's ledger (with request details) has neither the key nor the secret in it."""
    ledger = RequestLedger.local(tmp_path, DEMO_API_KEY)
    client = TikpayClient(
        sandbox.base_url,
        sandbox.token_url,
        Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_API_KEY),
        RequestBudget(ledger),
    )
    try:
        client.submit("TAPS", "2025-03-01T00:00:00", "2025-03-02T00:00:00", "csv")
        client.list_jobs()
    finally:
        client.close()
    for path in tmp_path.iterdir():
        assert DEMO_API_KEY not in path.name
        text = path.read_text(encoding="utf-8")
        assert DEMO_API_KEY not in text
        assert DEMO_CLIENT_SECRET not in text
    assert RequestLedger.local(tmp_path, DEMO_API_KEY).used() == 2


def test_torn_last_line_is_tolerated(tmp_path: Path) -> None:
    """A line cut short by a crash is skipped; the complete lines still count."""
    clock = FakeClock()
    ledger = ledger_at(tmp_path, clock)
    ledger.reserve("list")
    ledger.reserve("submit")
    with ledger.store.path.open("a", encoding="utf-8") as handle:
        handle.write('{"at": 10000.0, "ki')
    assert ledger_at(tmp_path, clock).used() == 2


def test_request_recorded_after_a_torn_line_is_counted(tmp_path: Path) -> None:
    """After a crash left a torn line, the next recorded request is still counted by later runs."""
    clock = FakeClock()
    ledger = ledger_at(tmp_path, clock)
    ledger.reserve("list")
    with ledger.store.path.open("a", encoding="utf-8") as handle:
        handle.write('{"at": 10000.0, "ki')
    after_crash = ledger_at(tmp_path, clock)
    after_crash.reserve("submit")
    assert after_crash.used() == 2
    assert ledger_at(tmp_path, clock).used() == 2


def test_next_free_at(tmp_path: Path) -> None:
    """next_free_at is when the oldest counted request leaves the window; None when none is counted."""
    clock = FakeClock(100.0)
    ledger = ledger_at(tmp_path, clock)
    assert ledger.next_free_at() is None
    ledger.reserve("list")
    clock.now = 200.0
    ledger.reserve("list")
    clock.now = 300.0
    assert ledger.next_free_at() == 100.0 + WINDOW
    clock.now = 1_150.0
    assert ledger.next_free_at() == 200.0 + WINDOW
    clock.now = 1_300.0
    assert ledger.next_free_at() is None


def test_blocked_until_expires(tmp_path: Path) -> None:
    """A recorded wait blocks until its instant (the latest wins), persists, and is not a request."""
    clock = FakeClock(100.0)
    ledger = ledger_at(tmp_path, clock)
    assert ledger.blocked_until() is None
    ledger.record_wait(500.0)
    ledger.record_wait(400.0)
    assert ledger.blocked_until() == 500.0
    assert ledger.used() == 0
    assert ledger_at(tmp_path, clock).blocked_until() == 500.0
    clock.now = 499.9
    assert ledger.blocked_until() == 500.0
    clock.now = 500.0
    assert ledger.blocked_until() is None


def test_long_ledger_is_compacted(tmp_path: Path) -> None:
    """A ledger of more than 2000 lines drops entries older than a week when read, keeping recent ones."""
    clock = FakeClock(30 * 86_400.0)
    path = ledger_at(tmp_path, clock).store.path
    old = "".join(json.dumps({"at": 1.0 + i, "kind": "list"}) + "\n" for i in range(2001))
    path.write_text(old + json.dumps({"at": clock.now - 10, "kind": "submit"}) + "\n", encoding="utf-8")
    ledger = ledger_at(tmp_path, clock)
    assert ledger.used() == 1
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1


def test_a_long_ledger_of_recent_lines_is_not_rewritten_on_every_read(tmp_path: Path) -> None:
    """A frequent schedule keeps many recent lines: nothing to drop, so no rewrite (and no churn)."""
    clock = FakeClock(30 * 86_400.0)
    path = ledger_at(tmp_path, clock).store.path
    recent = "".join(json.dumps({"at": clock.now - 3600 + i, "kind": "run"}) + "\n" for i in range(2001))
    path.write_text(recent, encoding="utf-8")
    before = path.stat().st_ino
    ledger = ledger_at(tmp_path, clock)
    ledger.reserve("list")
    assert path.stat().st_ino == before and len(path.read_text(encoding="utf-8").splitlines()) == 2002


def test_a_ledger_locked_too_long_by_another_run_is_one_clear_error(tmp_path: Path) -> None:
    ledger = ledger_at(tmp_path, FakeClock())
    stuck = FileLock(str(ledger.store.path) + ".lock")  # another run, stuck while holding it
    with stuck, pytest.raises(TikpayError, match=r"stayed locked by another run for 0\.2 s"):
        RequestLedger.local(tmp_path, KEY, clock=FakeClock(), lock_timeout=0.2)
    assert RequestLedger.local(tmp_path, KEY, clock=FakeClock(), lock_timeout=0.2).used() == 0  # free again
