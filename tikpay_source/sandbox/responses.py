"""HTTP answers as plain values, so request handling is testable apart from sockets.

The services decide *what* to answer (a ``Response``); ``server.py`` only writes it to
the wire. Error bodies follow the reference: JSON with an ``errorId`` UUID on the API,
S3-style XML on the object-storage stand-in.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

JSON = "application/json"


@dataclass
class Response:
    """A complete answer: status, headers and either an in-memory body or a file to stream.

    ``drop_after`` (the ``drop`` and ``cut_answer`` faults) sends the full ``Content-Length`` but only that
    many body bytes before closing the connection.
    """

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    file: Path | None = None
    drop_after: int | None = None


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer."""
    return Response(status, {"Content-Type": JSON, **(headers or {})}, json.dumps(payload).encode())


def api_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """The API's error shape: a fresh ``errorId`` UUID plus a message naming the problem."""
    return json_response(status, {"errorId": str(uuid.uuid4()), "message": message}, headers)


def oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> Response:
    """The token endpoint's error shape (RFC 6749 section 5.2)."""
    return json_response(
        status,
        {"error": error, "error_description": description},
        {"Cache-Control": "no-store", **(headers or {})},
    )


def s3_error(status: int, code: str, message: str) -> Response:
    """An object-store style XML error, as a pre-signed link returns when refused."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>\n"
    )
    return Response(status, {"Content-Type": "application/xml"}, body.encode())
