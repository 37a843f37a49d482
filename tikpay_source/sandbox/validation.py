"""Validation of the generate-report request body, with messages that name the problem.

The reference only says "400 invalid parameters"; the sandbox is strict where the spec
is explicit (required fields, enums, offset-free date-times) and lenient where real
APIs usually are (unknown fields are ignored).
"""

from __future__ import annotations

import json
from typing import Any

from tikpay_source.sandbox.clock import parse_local
from tikpay_source.sandbox.settings import FILE_TYPES, REPORT_TYPES

REQUIRED = ("startTime", "endTime", "reportType")


class InvalidRequest(ValueError):
    """The body cannot be accepted; ``str(error)`` is the message sent to the client."""


def parse_generate_request(raw: bytes) -> dict[str, str]:
    """The normalised job parameters of a request body, or ``InvalidRequest``."""
    try:
        body: Any = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    missing = [name for name in REQUIRED if name not in body]
    if missing:
        raise InvalidRequest(f"missing required field(s): {', '.join(missing)}")
    report_type = body["reportType"]
    if report_type not in REPORT_TYPES:
        raise InvalidRequest(f"reportType must be one of {', '.join(REPORT_TYPES)}")
    file_type = body.get("fileType", "csv")
    if file_type not in FILE_TYPES:
        raise InvalidRequest(f"fileType must be one of {', '.join(FILE_TYPES)}")
    times = {}
    for name in ("startTime", "endTime"):
        try:
            times[name] = parse_local(body[name])
        except (ValueError, TypeError):
            raise InvalidRequest(
                f"{name} must be a local date-time YYYY-MM-DDTHH:MM:SS without offset"
            ) from None
    if times["startTime"] >= times["endTime"]:
        raise InvalidRequest("startTime must be before endTime")
    return {
        "reportType": report_type,
        "fileType": file_type,
        "startTime": body["startTime"],
        "endTime": body["endTime"],
    }
