"""Downloading a finished report: streamed to a temporary file, checked whole, credential-free.

The link is pre-signed object storage on another host: it needs no credentials, so
none are sent (a fresh session, no auth, no API key), and the link itself is a secret
until it expires, so no message or log line ever includes it, only its host.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import requests

from tikpay_source.errors import LinkExpired, ReportFileError, ScratchUnusable
from tikpay_source.settings import DOWNLOAD_CHUNK_BYTES, HTTP_TIMEOUT_SECONDS

ProgressCallback = Callable[[int, int | None], None]
"""Called with (bytes so far, total bytes or None) as a download proceeds."""


def link_host(url: str) -> str:
    """The only part of a signed link that may be shown: its host and port (never a user or password)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "the download host"
    if not host:
        return "the download host"
    return f"{host}:{port}" if port else host


def download_report(
    url: str,
    directory: Path,
    *,
    suffix: str,
    progress: ProgressCallback | None = None,
    timeout: float = HTTP_TIMEOUT_SECONDS,
) -> Path:
    """Stream ``url`` into a new file under ``directory`` and return its path.

    Raises :class:`LinkExpired` for a refused link (the next job list signs a new one),
    :class:`ReportFileError` when the transfer fails (the body shorter or longer than
    announced, a cut chunked body, a dropped connection), and :class:`ScratchUnusable` when
    the file cannot be written here, which no new job would change. Any other exception
    is a bug and goes up as it is. The partial file is removed in every failure.

    A body that HTTP frames (``Content-Length``, chunked) is proved whole by that framing,
    so a CSV file without a line break after its last row (legal) is kept. Only an
    unframed body, which ends when the connection does, must end with a line break.
    """
    host = link_host(url)
    handle, name = tempfile.mkstemp(prefix="tikpay-", suffix=f".{suffix}", dir=directory)
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out, requests.Session() as session:
            response = session.get(url, stream=True, timeout=timeout, allow_redirects=False)
            with response:
                if response.status_code in (401, 403, 404, 410):
                    raise LinkExpired(
                        f"the download link at {host} was refused (HTTP {response.status_code})"
                    )
                if response.status_code != 200:
                    raise ReportFileError(f"the download host {host} answered HTTP {response.status_code}")
                expected = _content_length(response)
                framed = "Content-Length" in response.headers or "chunked" in response.headers.get(
                    "Transfer-Encoding", ""
                )
                received = 0
                for chunk in response.iter_content(chunk_size=DOWNLOAD_CHUNK_BYTES):
                    out.write(chunk)
                    received += len(chunk)
                    if progress:
                        progress(received, expected)
        if expected is not None and received != expected:
            raise ReportFileError(f"the download from {host} stopped at {received} of {expected} bytes")
        if not framed and suffix == "csv" and received and not _ends_with_line_break(path):
            raise ReportFileError(
                f"the download from {host} announced no length and ends inside a line: it looks cut short"
            )
        return path
    except (LinkExpired, ReportFileError):
        path.unlink(missing_ok=True)
        raise
    except (
        requests.RequestException
    ) as exc:  # the transfer failed (requests wraps urllib3); never echo the link
        path.unlink(missing_ok=True)
        raise ReportFileError(f"the download from {host} broke off ({type(exc).__name__})") from None
    except OSError as exc:  # the scratch folder: a full or read-only disk is no fault of the file
        path.unlink(missing_ok=True)
        raise ScratchUnusable(
            f"writing the download to {directory} failed: {exc.strerror or type(exc).__name__}"
        ) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or response.headers.get("Content-Encoding"):
        return None  # compressed bodies are measured after decoding, so the header cannot be checked
    try:
        return int(value)
    except ValueError:
        return None


def _ends_with_line_break(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) in (b"\n", b"\r")
