"""What the Data API says, as Python values: job entries, job statuses, error answers, Retry-After.

Pure parsing, no requests: the client (:mod:`tikpay_source.api.client`) sends the calls and
hands their answers here, the runner decides on the values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

import requests

from tikpay_source.errors import ApiError, ConfigError
from tikpay_source.planning.windows import parse_local

# Job statuses of the public reference; any other value is an answer the connector cannot use.
COMPLETE = "COMPLETE"
NO_DATA = "NO_DATA"
IN_PROGRESS = "IN_PROGRESS"
FAILED = "FAILED"

_LONGEST_RETRY_AFTER = 366 * 24 * 3600  # an absurd Retry-After is read as "a year", not a crash


@dataclass(frozen=True)
class ApiJob:
    """One entry of the job list, as the API reports it (times are naive local strings)."""

    job_id: str
    status: str
    report_type: str
    file_type: str
    start_time: str
    end_time: str
    timezone: str | None
    created_at: str | None
    expires_at: str | None
    completed_at: str | None
    download_url: str | None = field(default=None, repr=False)

    @classmethod
    def from_api(cls, raw: Any) -> ApiJob:
        """Read one job object. Only ``jobId`` is required: a job with odd other fields is still
        known to exist (so its window is not submitted again), and its status stops that window
        with a message naming the job."""
        if not isinstance(raw, dict) or not isinstance(raw.get("jobId"), str) or not raw["jobId"]:
            shown = {k: v for k, v in raw.items() if k != "downloadUrl"} if isinstance(raw, dict) else raw
            raise ApiError(f"the job list holds an entry without a jobId: {shorten(shown)}")

        def text(name: str) -> str:
            value = raw.get(name)
            return value if isinstance(value, str) else ""

        return cls(
            job_id=raw["jobId"],
            status=text("status"),
            report_type=text("reportType"),
            file_type=(text("fileType") or "csv").lower(),
            start_time=text("startTime"),
            end_time=text("endTime"),
            timezone=text("timezone") or None,
            created_at=text("createdAt") or None,
            expires_at=text("expiresAt") or None,
            completed_at=text("completedAt") or None,
            download_url=text("downloadUrl") or None,
        )


def local_instant(text: str | None, zone: ZoneInfo) -> datetime | None:
    """One of the API's local times (``2025-03-01T04:00:00``) as an aware datetime; None if absent or odd."""
    if not text:
        return None
    try:
        return parse_local(text).replace(tzinfo=zone)
    except ConfigError:
        return None


def job_duration(job: ApiJob, zone: ZoneInfo) -> float | None:
    """How long a job took at Tikpay in seconds, ``createdAt`` to ``completedAt``, if both are known."""
    created, completed = local_instant(job.created_at, zone), local_instant(job.completed_at, zone)
    if created is None or completed is None:
        return None
    seconds = (completed.astimezone(timezone.utc) - created.astimezone(timezone.utc)).total_seconds()
    return seconds if seconds >= 0 else None


def shorten(value: Any, limit: int = 120) -> str:
    """``repr`` of an unexpected answer, cut to fit one line of an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """``Retry-After`` as an aware UTC datetime, from delta-seconds or an HTTP-date (RFC 9110)."""
    if not value:
        return None
    text = value.strip()
    try:
        if text.isdigit():
            return now + timedelta(seconds=min(int(text), _LONGEST_RETRY_AFTER))
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


@dataclass(frozen=True)
class ErrorAnswer:
    """An error answer of the API: its status, ``errorId`` and message (never a request header)."""

    status: int
    error_id: str | None = None
    message: str | None = None

    @classmethod
    def of(cls, response: requests.Response) -> ErrorAnswer:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return cls(response.status_code)
        message = body.get("message") or body.get("error")
        return cls(
            response.status_code,
            str(body["errorId"]) if body.get("errorId") else None,
            str(message)[:200] if message else None,
        )

    def __str__(self) -> str:
        parts = [f"HTTP {self.status}"]
        if self.error_id:
            parts.append(f"errorId {self.error_id}")
        if self.message:
            parts.append(self.message)
        return ", ".join(parts)

    def error(self, message: str) -> ApiError:
        """An :class:`ApiError` carrying this answer's status and errorId as fields."""
        return ApiError(message, status=self.status, error_id=self.error_id)
