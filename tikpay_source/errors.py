"""Errors the connector raises, each carrying a one-line message fit for a user.

No message ever contains a secret: client secret, API key, token or signed link.
"""

from __future__ import annotations

from datetime import datetime


class TikpayError(Exception):
    """Base class: anything the connector reports to a user as one sentence."""


class ConfigError(TikpayError):
    """A configuration value or command-line flag is invalid (or the timezone disagrees with the API's)."""


class AuthError(TikpayError):
    """The token endpoint or the API refused the credentials."""


class ApiError(TikpayError):
    """The API answered something the connector cannot use (400, unexpected body, 5xx after retries).

    ``status`` and ``error_id`` are the HTTP status and the API's ``errorId`` when there
    was an answer, so a caller can decide on them without reading the message.
    """

    def __init__(self, message: str, *, status: int | None = None, error_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id


class SubmissionUncertain(ApiError):
    """A submission met a 5xx or a dropped connection: the job may or may not exist."""


class RequestNotSent(ApiError):
    """No connection to the API could be made: the request provably never left (and is not counted)."""


class QuotaExhausted(TikpayError):
    """The API key must wait: a 429 with a long Retry-After, or the ledger says the 24-hour quota is spent."""

    def __init__(self, message: str, retry_at: datetime | None) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class BudgetSpent(TikpayError):
    """This run has spent the requests it planned (``max_requests`` or the ledger's count): a soft stop."""


class ReportFileError(TikpayError):
    """A downloaded report is truncated, corrupt or unreadable."""


class ScratchUnusable(TikpayError):
    """A downloaded file cannot be written to the run's scratch folder (a full or read-only disk)."""


class LineTooLong(ReportFileError):
    """A line is longer than the reader's limit: read again with the larger one (settings)."""


class TypesUnproven(TikpayError):
    """A value failed the proof of the type its column's sample suggested: decide from every row."""


class ReadInterrupted(TikpayError):
    """A report file failed after some of its rows were handed to dlt: the whole run must not load.

    Neither retrying the file nor skipping the window could keep those rows from being
    doubled or loaded on their own, so the extract stops and nothing of the run is loaded.
    """


class LinkExpired(TikpayError):
    """The signed download link no longer works; the next job list hands out a fresh one."""


class WidenNextRun(TikpayError):
    """A column must widen, but rows of this run already have its narrower type: load the window next run."""


class WideningRefused(TikpayError):
    """A column must widen and the destination cannot do it: the destination's problem, not the file's.

    The window keeps its job (the file is good): it is tried again once the column is altered.
    """


def caused_by_interrupt(exc: BaseException) -> bool:
    """Whether Ctrl-C (or SIGTERM) is anywhere behind ``exc``.

    dlt wraps a step's failure, and DuckDB turns an interrupt that reaches a query into an
    error (``RuntimeError: Query interrupted``); either way the interrupt is in the chain.
    """
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = (
            getattr(cause, "exception", None)
            or cause.__cause__
            or cause.__context__
            or getattr(cause, "dbapi_exception", None)
        )
    return False


class RunLocked(TikpayError):
    """Another run of the same pipeline holds its run lock (exit 5): this one did nothing."""
