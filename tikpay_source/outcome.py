"""What a run did and what to expect next: recorded in dlt state, read back for the summary.

The resource records its outcome as ``last_run`` in its state instead of raising, so
that a quota stop or a failing window never throws away what the run already loaded.
:func:`run_summary` reads it back after ``pipeline.run`` for the script, a scheduler,
or an orchestrator task that should fail when the run did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from tikpay_source.planning.state import OWED, RunState, last_run_of, stored_state
from tikpay_source.planning.windows import Window
from tikpay_source.settings import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_QUOTA_STOP,
    EXIT_WINDOWS_FAILED,
    REPORT_TABLES,
)


class RunOutcome:
    """Collects what one run did; ``to_state`` turns it into the ``last_run`` record."""

    def __init__(self) -> None:
        self.started_at = datetime.now(timezone.utc)
        self.submitted = 0
        self.adopted = 0
        self.windows: dict[str, int] = {}
        self.rows: dict[str, int] = {}
        self.window_errors: list[str] = []
        self.stopped: dict[str, Any] | None = None

    def loaded(self, report_type: str, rows: int) -> None:
        """One window of ``report_type`` loaded (or found empty) with ``rows`` rows."""
        table = REPORT_TABLES[report_type]
        self.windows[table] = self.windows.get(table, 0) + 1
        self.rows[table] = self.rows.get(table, 0) + rows

    def stop(self, kind: str, message: str, retry_at: datetime | None = None) -> None:
        """The run ended early: ``quota`` (soft, try again later) or ``error``."""
        self.stopped = {
            "kind": kind,
            "message": message,
            "retry_at": retry_at.isoformat() if retry_at else None,
        }

    def finish(
        self,
        state: RunState,
        run_id: str,
        report_types: tuple[str, ...],
        requests: int,
        quota_left: int | None,
        held_back: Sequence[Window],
        refused: dict[str, str],
        upcoming: str | None = None,
    ) -> None:
        """Record what the run did as ``last_run``; a window refused and still owed is an error of the run."""
        for key, reason in refused.items():
            entry = state.entries.get(key)
            if entry is not None and entry.status == OWED:
                self.window_errors.append(f"{entry.window.describe()}: {reason}; submitted again next run")
        state.finish(
            run_id,
            self.to_state(
                run_id=run_id,
                requests=requests,
                quota_left=quota_left,
                pending=[e.window.describe() for e in state.in_flight(report_types)],
                waiting=[e.window.describe() for e in state.owed(report_types)],
                later=[w.describe() for w in held_back],
                gave_up=[f"{e.window.describe()}: {e.error}" for e in state.gave_up()],
            )
            | {"upcoming": upcoming},
        )

    def to_state(
        self,
        *,
        run_id: str | None = None,
        requests: int,
        quota_left: int | None,
        pending: list[str],
        waiting: list[str],
        gave_up: list[str],
        later: list[str],
    ) -> dict[str, Any]:
        return {
            "run_id": run_id,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "requests": requests,
            "quota_left": quota_left,
            "submitted": self.submitted,
            "adopted": self.adopted,
            "windows_loaded": sum(self.windows.values()),
            "windows": dict(sorted(self.windows.items())),
            "rows": dict(sorted(self.rows.items())),
            "pending": pending,
            "waiting": waiting,
            "later": later,
            "gave_up": gave_up,
            "window_errors": self.window_errors,
            "stopped": self.stopped,
        }


@dataclass(frozen=True)
class RunSummary:
    """The last run of a pipeline, as its state recorded it."""

    requests: int = 0
    quota_left: int | None = None
    submitted: int = 0
    adopted: int = 0
    windows_loaded: int = 0
    windows: dict[str, int] = field(default_factory=dict)
    """Windows loaded per table, as ``rows`` counts rows."""
    rows: dict[str, int] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    later: list[str] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)
    window_errors: list[str] = field(default_factory=list)
    stopped: dict[str, Any] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    run_id: str | None = None
    in_all: dict[str, int] = field(default_factory=dict)
    """Rows each table holds after the run, where the destination was asked (not kept in the state)."""
    upcoming: str | None = None
    """When the next window is over (lag included), as the run's plan saw it."""

    @classmethod
    def of(cls, source_state: dict[str, Any]) -> RunSummary:
        """The summary of the last run recorded in a source state (empty if it never ran)."""
        record = last_run_of(source_state)
        return cls(**{k: v for k, v in record.items() if k in cls.__dataclass_fields__})

    @property
    def seconds(self) -> float | None:
        """How long the run took, start to finish of its extract."""
        if not self.started_at or not self.finished_at:
            return None
        return (
            datetime.fromisoformat(self.finished_at) - datetime.fromisoformat(self.started_at)
        ).total_seconds()

    def after(self, pending: RunSummary | None) -> RunSummary:
        """This run's summary counting the windows and rows of an interrupted run's load it finished first."""
        if pending is None:
            return self
        return replace(
            self,
            windows_loaded=self.windows_loaded + pending.windows_loaded,
            windows=_added(self.windows, pending.windows),
            rows=_added(self.rows, pending.rows),
        )

    @property
    def exit_code(self) -> int:
        """0 done, 3 stopped for quota (soft), 4 some windows failed, 2 bad configuration, 1 failed."""
        if self.stopped and self.stopped.get("kind") == "quota":
            return EXIT_QUOTA_STOP
        if self.stopped and self.stopped.get("kind") == "config":
            return EXIT_BAD_INPUT
        if self.stopped:
            return EXIT_FAILED
        if self.gave_up or self.window_errors:
            return EXIT_WINDOWS_FAILED
        return EXIT_OK

    def errors(self) -> list[str]:
        """What went wrong in this run, a line each: its failed windows and why it stopped.

        Windows given up earlier are left out: they are in every later summary until
        ``--retry-failed``, and would repeat in every run's row.
        """
        out = [f"window failed: {item}" for item in self.window_errors]
        if self.stopped:
            out.append(f"stopped ({self.stopped['kind']}): {self.stopped['message']}")
        return out

    def lines(self) -> list[str]:
        """The end-of-run summary; its last line says what to expect next."""
        out = [f"windows loaded: {self.windows_loaded}"]
        for table in sorted({*self.rows, *self.in_all}):
            held = f" ({self.in_all[table]} in all)" if table in self.in_all else ""
            out.append(f"rows loaded into {table}: {self.rows.get(table, 0)}{held}")
        spent = f"requests spent: {self.requests} ({self.submitted} submissions"
        spent += f", {self.adopted} jobs adopted)" if self.adopted else ")"
        if self.quota_left is not None:
            spent += f"; {self.quota_left} left in the 24-hour quota"
        out.append(spent)
        out += [f"window failed: {item}" for item in self.window_errors]
        out += [f"window given up: {item} (rerun with --retry-failed)" for item in self.gave_up]
        if self.seconds is not None:
            out.append(f"took {self.seconds:.0f} s")
        out.append(self._next())
        return out

    def _next(self) -> str:
        if self.stopped and self.stopped.get("kind") == "quota":
            when = self.stopped.get("retry_at")
            return f"stopped for quota: {self.stopped['message']}" + (
                f"; run again after {when}" if when else ""
            )
        if self.stopped:
            return f"failed: {self.stopped['message']}"
        if self.pending or self.waiting or self.later:
            parts = []
            if self.pending and self.window_errors:
                parts.append(
                    f"{len(self.pending)} window(s) in flight or not loaded; the next run tries them again"
                )
            elif self.pending:
                parts.append(
                    f"{len(self.pending)} job(s) still in progress; they will be loaded by the next run"
                )
            if self.waiting:
                parts.append(
                    f"{len(self.waiting)} window(s) to submit (past the request budget, or again after a "
                    "failure); the next run submits them"
                )
            if self.later:
                parts.append(
                    f"{len(self.later)} report type(s) loaded a probe first; the next run asks for the rest "
                    "in jobs sized from its file"
                )
            return "; ".join(parts)
        if self.upcoming:
            return f"all caught up: {self.upcoming}"
        return "all caught up: the next run will load the next window once it has ended"


def _added(counts: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    return {key: counts.get(key, 0) + more.get(key, 0) for key in sorted({*counts, *more})}


def run_summary(pipeline: Any, source: Any = None) -> RunSummary:
    """Read the last run's outcome from a pipeline's state (empty if the source never ran).

    Give the ``source`` that ran when a pipeline runs more than one Tikpay source (a clone
    under another name, say); without it, the summary is of the one that ran last.
    """
    return RunSummary.of(stored_state(pipeline, source.name if source is not None else None))
