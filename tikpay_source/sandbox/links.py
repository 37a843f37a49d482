"""Pre-signed, expiring download links, like an object store's.

A link carries its expiry and an HMAC of path and expiry, so the download server needs
no credentials and no lookup to judge it. The ``expire_links`` fault retires the
signing key: links signed with a retired key are reported as expired, and links
signed afterwards work again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from urllib.parse import urlencode

from tikpay_source.sandbox.clock import SandboxClock

EXPIRED = "Request has expired"
BAD_SIGNATURE = "The request signature we calculated does not match the signature you provided."


class LinkSigner:
    """Signs and checks ``/reports/<jobId>.<ext>?expires=<epoch>&signature=<hmac>`` links."""

    def __init__(self, clock: SandboxClock, ttl_seconds: float) -> None:
        self._clock = clock
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._keys = [secrets.token_bytes(32)]  # the last one signs; earlier ones are retired

    def sign(self, path: str) -> str:
        """The query string that makes ``path`` downloadable until the link TTL passes."""
        expires = str(int(self._clock.time() + self._ttl))
        with self._lock:
            key = self._keys[-1]
        return urlencode({"expires": expires, "signature": _mac(key, path, expires)})

    def problem(self, path: str, expires: str | None, signature: str | None) -> str | None:
        """Why the link is refused, or None if it is valid now."""
        if not expires or not signature or not expires.isdigit():
            return BAD_SIGNATURE
        with self._lock:
            keys = list(self._keys)
        for index, key in enumerate(keys):
            if hmac.compare_digest(_mac(key, path, expires), signature):
                retired = index < len(keys) - 1
                return EXPIRED if retired or self._clock.time() >= int(expires) else None
        return BAD_SIGNATURE

    def expire_all(self) -> None:
        """Retire the signing key, so every link issued so far counts as expired."""
        with self._lock:
            self._keys.append(secrets.token_bytes(32))


def _mac(key: bytes, path: str, expires: str) -> str:
    return hmac.new(key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()
