"""Faults a test can switch on to rehearse how the connector copes with a bad day.

A ``Fault`` says what goes wrong, where, and how many times; the ``FaultBook`` holds
the active ones and hands each out to matching requests until it is spent. Faults are
data rather than callbacks so that a test reads as a plain description of the failure.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

ENDPOINTS: tuple[str, ...] = ("token", "submit", "list", "download")
API_ENDPOINTS: tuple[str, ...] = ("submit", "list")

# kind -> endpoints it may target; an empty tuple means it targets no request at all.
_KIND_ENDPOINTS: dict[str, tuple[str, ...]] = {
    "status": ENDPOINTS,
    "slow": ENDPOINTS,
    "drop": ("download",),
    "cut_answer": API_ENDPOINTS,
    "truncate": ("download",),
    "malformed_row": ("download",),
    "content": ("download",),
    "quota_exhausted": API_ENDPOINTS,
    "job_failed": (),
    "no_data": (),
    "odd_status": (),
    "no_link": (),
    "expire_token": (),
    "expire_links": (),
}
# Kinds that act once, at injection, instead of waiting for a request.
INSTANT_KINDS = frozenset({"expire_token", "expire_links"})
# Kinds consumed when a job resolves rather than when a request arrives.
JOB_KINDS = frozenset({"job_failed", "no_data", "odd_status", "no_link"})
FAULT_KINDS = frozenset(_KIND_ENDPOINTS)


@dataclass(frozen=True)
class Fault:
    """One switchable failure.

    ``kind`` is one of ``FAULT_KINDS``. ``endpoint`` narrows it to "token", "submit",
    "list" or "download" (None = every endpoint the kind can target). ``times`` is how
    many matching requests (or, for job kinds, resolving jobs) it hits before it is
    spent; None keeps it until ``clear_faults``. The remaining fields parameterise
    particular kinds: ``status`` and ``retry_after`` for "status" (503 answers carry
    ``Retry-After`` when ``retry_after`` is set), ``retry_after`` for
    "quota_exhausted", ``delay`` (seconds) for "slow", ``after_bytes`` for "drop" and "cut_answer",
    ``report_type`` for the job kinds (None = any report type), ``job_status`` for
    "odd_status" (the status the job is listed with, one the public reference does not name),
    ``body`` for "content": what the download serves instead of the job's file (for jobs
    of ``report_type`` only, if given), a test's own file byte for byte.
    """

    kind: str
    endpoint: str | None = None
    times: int | None = 1
    status: int = 500
    delay: float = 0.0
    after_bytes: int = 0
    retry_after: float | None = None
    report_type: str | None = None
    job_status: str = "ARCHIVED"
    body: bytes = b""

    def __post_init__(self) -> None:
        """Fail at ``inject`` time, where the mistake is, not deep in a request."""
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        allowed = _KIND_ENDPOINTS[self.kind]
        if self.endpoint is not None and self.endpoint not in allowed:
            raise ValueError(f"fault {self.kind!r} cannot target endpoint {self.endpoint!r}")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be >= 1 or None")
        if self.kind == "status" and not 400 <= self.status <= 599:
            raise ValueError("a status fault needs an error status (400-599)")
        if self.delay < 0 or self.after_bytes < 0:
            raise ValueError("delay and after_bytes cannot be negative")

    def targets(self, endpoint: str | None, report_type: str | None = None) -> bool:
        """Whether this fault applies to a request at ``endpoint`` (or a job of ``report_type``)."""
        if self.kind in JOB_KINDS or (self.kind == "content" and report_type is not None):
            return self.report_type is None or self.report_type == report_type
        if self.endpoint is not None:
            return self.endpoint == endpoint
        return endpoint in _KIND_ENDPOINTS[self.kind]


@dataclass
class _Armed:
    fault: Fault
    remaining: int | None  # None = until cleared


class FaultBook:
    """The active faults, shared by every server thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: list[_Armed] = []

    def add(self, fault: Fault) -> None:
        """Activate ``fault``; faults of one kind are used in the order they were added."""
        with self._lock:
            self._active.append(_Armed(fault, fault.times))

    def clear(self) -> None:
        """Deactivate every fault."""
        with self._lock:
            self._active.clear()

    def take(self, kind: str, endpoint: str | None = None, report_type: str | None = None) -> Fault | None:
        """Use up one hit of the first active ``kind`` fault that targets this request, if any."""
        with self._lock:
            for armed in self._active:
                if armed.fault.kind == kind and armed.fault.targets(endpoint, report_type):
                    if armed.remaining is not None:
                        armed.remaining -= 1
                        if armed.remaining <= 0:
                            self._active.remove(armed)
                    return armed.fault
        return None
