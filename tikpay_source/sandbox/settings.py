"""Settings of a sandbox run, and the public demo credentials it accepts by default.

Every knob that the real Tikpay Data API leaves unstated (see ``tikpay-data-api.md``)
is a setting here, so tests and users can rehearse the connector against each
plausible behaviour instead of the one we happened to guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

# Public demo values: the sandbox is a local stand-in, so these are not secrets and
# may be printed, committed in examples and pasted into CI configuration.
DEMO_CLIENT_ID = "tikpay-sandbox-client"
DEMO_CLIENT_SECRET = "tikpay-sandbox-secret"
DEMO_API_KEY = "tikpay-sandbox-api-key"

REPORT_TYPES: tuple[str, ...] = ("CUSTOMERS", "PAYMENTS", "TAPS", "TRIPS")
FILE_TYPES: tuple[str, ...] = ("csv", "xml")

# Small enough that a day-long job is instant, big enough that every awkward value
# (quotes, newlines, non-ASCII, empties) shows up in a single day of data.
DEFAULT_ROWS_PER_HOUR: Mapping[str, int] = {"TAPS": 40, "TRIPS": 20, "PAYMENTS": 10, "CUSTOMERS": 2}

_RETRY_AFTER_FORMATS = ("seconds", "http-date")
_TOKEN_AUTH_MODES = ("basic", "form", "both")


@dataclass(frozen=True)
class SandboxSettings:
    """How a sandbox behaves; every field has a default that mimics the reference API.

    The dataclass is frozen so a running sandbox cannot drift from what a test set up;
    build a new ``Sandbox`` to change behaviour.
    """

    timezone: str = "Australia/Sydney"
    seed: int = 42
    rows_per_hour: int | Mapping[str, int] | None = None
    # like the real API, a job is done after a time, however often the list is read
    complete_after_list_calls: int = 0
    complete_after_seconds: float = 2.0
    token_ttl_seconds: float = 3600
    link_ttl_seconds: float = 3600
    job_ttl_days: float = 7
    quota_limit: int = 20
    quota_window_seconds: float = 86400
    retry_after_format: str = "seconds"
    token_auth: str = "both"
    client_id: str = DEMO_CLIENT_ID
    client_secret: str = DEMO_CLIENT_SECRET
    api_keys: tuple[str, ...] = (DEMO_API_KEY,)
    host: str = "127.0.0.1"
    port: int = 0
    download_host: str = "127.0.0.2"
    download_port: int = 0
    start_clock: datetime | None = None
    verbose: bool = False
    _resolved_rows: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Reject impossible settings at construction, not at the first request."""
        ZoneInfo(self.timezone)  # raises ZoneInfoNotFoundError for an unknown zone
        if self.retry_after_format not in _RETRY_AFTER_FORMATS:
            raise ValueError(f"retry_after_format must be one of {_RETRY_AFTER_FORMATS}")
        if self.token_auth not in _TOKEN_AUTH_MODES:
            raise ValueError(f"token_auth must be one of {_TOKEN_AUTH_MODES}")
        if self.complete_after_list_calls < 0 or self.complete_after_seconds < 0:
            raise ValueError("completion delays cannot be negative")
        if self.quota_limit < 1 or self.quota_window_seconds <= 0:
            raise ValueError("quota_limit must be >= 1 and quota_window_seconds > 0")
        if self.start_clock is not None and self.start_clock.tzinfo is None:
            raise ValueError("start_clock must be timezone-aware")
        if isinstance(self.api_keys, str):  # a lone string would be split into characters
            object.__setattr__(self, "api_keys", (self.api_keys,))
        object.__setattr__(self, "_resolved_rows", _resolve_rows(self.rows_per_hour))

    def rows_for(self, report_type: str) -> int:
        """Rows generated per UTC hour for ``report_type`` (after defaults are applied)."""
        return self._resolved_rows[report_type]


def _resolve_rows(rows_per_hour: int | Mapping[str, int] | None) -> dict[str, int]:
    """Turn the three accepted shapes of ``rows_per_hour`` into one per-type dict."""
    if rows_per_hour is None:
        resolved = dict(DEFAULT_ROWS_PER_HOUR)
    elif isinstance(rows_per_hour, int):
        resolved = dict.fromkeys(REPORT_TYPES, rows_per_hour)
    else:
        unknown = set(rows_per_hour) - set(REPORT_TYPES)
        if unknown:
            raise ValueError(f"unknown report types in rows_per_hour: {sorted(unknown)}")
        resolved = {**DEFAULT_ROWS_PER_HOUR, **rows_per_hour}
    if any(n < 0 for n in resolved.values()):
        raise ValueError("rows_per_hour cannot be negative")
    return resolved
