"""Shared fixtures: a running sandbox per test, or a factory for sandboxes with custom settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tikpay_source.sandbox import Sandbox, SandboxSettings


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A sandbox with default settings, started for one test and stopped after it."""
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """Factory: ``make_sandbox(**SandboxSettings kwargs)`` starts a sandbox; all stop at teardown."""
    started: list[Sandbox] = []

    def _make(**settings: Any) -> Sandbox:
        sb = Sandbox(SandboxSettings(**settings)).start()
        started.append(sb)
        return sb

    yield _make
    for sb in started:
        sb.stop()
