"""Client-credential checks for the token endpoint and bearer tokens for the API.

Tokens are random and opaque, like the real authorisation server's, and expire by the
sandbox clock so a test can watch the connector refresh one without waiting an hour.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
from collections.abc import Mapping

from tikpay_source.sandbox.clock import SandboxClock
from tikpay_source.sandbox.settings import SandboxSettings

INVALID_TOKEN = "invalid bearer token"
EXPIRED_TOKEN = "token expired"


class TokenStore:
    """Issued bearer tokens and their expiry instants on the sandbox clock."""

    def __init__(self, clock: SandboxClock, ttl_seconds: float) -> None:
        self._clock = clock
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}

    def issue(self) -> str:
        """A fresh token valid for the configured lifetime."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._expiry[token] = self._clock.time() + self._ttl
        return token

    def problem(self, authorization: str | None) -> str | None:
        """Why an ``Authorization`` header is not acceptable, or None if it is."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return INVALID_TOKEN
        with self._lock:
            expiry = self._expiry.get(token.strip())
        if expiry is None:
            return INVALID_TOKEN
        return EXPIRED_TOKEN if self._clock.time() >= expiry else None

    def expire_all(self) -> None:
        """Make every token issued so far expired (the ``expire_token`` fault)."""
        with self._lock:
            self._expiry = dict.fromkeys(self._expiry, float("-inf"))


def client_authenticated(
    authorization: str | None, form: Mapping[str, str], settings: SandboxSettings
) -> bool:
    """Whether the token request proves the client's identity the way ``token_auth`` allows."""
    offered: list[tuple[str, str]] = []
    if settings.token_auth in ("basic", "both"):
        basic = _basic_credentials(authorization)
        if basic is not None:
            offered.append(basic)
    if settings.token_auth in ("form", "both") and "client_id" in form:
        offered.append((form.get("client_id", ""), form.get("client_secret", "")))
    return bool(offered) and all(
        hmac.compare_digest(cid.encode(), settings.client_id.encode())
        and hmac.compare_digest(secret.encode(), settings.client_secret.encode())
        for cid, secret in offered
    )


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None
