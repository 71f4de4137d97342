"""The platform's public keys: its JWK set, fetched from the registered URL and cached.

Only the registered ``jwks_url`` is ever fetched: a ``jku``, ``x5u`` or embedded ``jwk`` in a
token's header is refused by ``launch`` before any key is looked up, never followed. An
unknown ``kid`` (the platform rotated its keys) fetches the set again, at most once per
``REFRESH`` seconds, so forged tokens with random kids cannot make the tool hammer the platform.
Only RSA signing keys of 2048 bits or more are kept.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from grader.service.lti.transport import PlatformError, Transport

TTL = 300.0  # seconds a fetched key set is used before it is fetched again
REFRESH = 30.0  # the least time between two fetches caused by an unknown kid
MAX_KEYS = 20


class UnknownKey(PlatformError):
    """No usable key of the platform signed this token."""


class PlatformKeys:
    """Cached key sets, one per JWK set URL."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._sets: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def key(self, jwks_url: str, kid: str | None) -> Any:
        """The public key with ``kid`` (or the set's only key when the token names none)."""
        now = time.monotonic()
        with self._lock:
            cached = self._sets.get(jwks_url)
        if cached is None or now - cached[0] > TTL:
            cached = self._fetch(jwks_url)
        found = _pick(cached[1], kid)
        if found is None and now - cached[0] > REFRESH:
            cached = self._fetch(jwks_url)
            found = _pick(cached[1], kid)
        if found is None:
            raise UnknownKey(f"the platform's key set has no RSA signing key {'kid ' + repr(kid[:80]) if kid else ''}"
                            .rstrip())
        return found

    def _fetch(self, jwks_url: str) -> tuple[float, dict[str, Any]]:
        import jwt

        answer = self.transport.request("GET", jwks_url, headers={"Accept": "application/json"})
        data = answer.json()
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise PlatformError("the platform's JWK set has no \"keys\" list")
        keys: dict[str, Any] = {}
        for entry in data["keys"][:MAX_KEYS]:
            if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
                continue
            if entry.get("alg", "RS256") != "RS256":
                continue
            try:
                key = jwt.PyJWK(entry, algorithm="RS256").key
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                continue
            if key.key_size < 2048:
                continue
            keys[str(entry.get("kid", ""))] = key
        stamped = (time.monotonic(), keys)
        with self._lock:
            self._sets[jwks_url] = stamped
        return stamped


def _pick(keys: dict[str, Any], kid: str | None) -> Any:
    if kid is not None:
        return keys.get(kid)
    return next(iter(keys.values())) if len(keys) == 1 else None
