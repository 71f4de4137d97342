"""OAuth2 client-credentials tokens for the platform's services (IMS Security Framework 4.1).

The tool asks the platform's token endpoint for an access token with a JWT client assertion
(RFC 7523) signed by the tool's key: ``iss`` and ``sub`` are the client id, ``aud`` the token
endpoint (or the platform's stated audience), a fresh ``jti`` and a five-minute life. Tokens
are cached per platform and scope set until shortly before they expire, so a class's scores
cost one token, not one per score. A token is never logged or put in an error message.
"""

from __future__ import annotations

import secrets
import threading
import time
from urllib.parse import urlencode

from grader.service.lti.keys import ToolKey
from grader.service.lti.registry import Platform
from grader.service.lti.transport import PlatformError, Transport

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFE = 300
MARGIN = 30.0  # seconds before its expiry a cached token is no longer used


class Tokens:
    """Access tokens by (issuer, client id, scopes)."""

    def __init__(self, key: ToolKey, transport: Transport) -> None:
        self.key, self.transport = key, transport
        self._cache: dict[tuple[str, str, str], tuple[float, str]] = {}
        self._lock = threading.Lock()

    def assertion(self, platform: Platform) -> str:
        now = int(time.time())
        return self.key.sign({"iss": platform.client_id, "sub": platform.client_id, "aud": platform.audience,
                              "iat": now, "exp": now + ASSERTION_LIFE, "jti": secrets.token_urlsafe(24)})

    def get(self, platform: Platform, scopes: tuple[str, ...]) -> str:
        """A bearer token for ``scopes`` (cached); PlatformError when the platform gives none."""
        wanted = " ".join(sorted(set(scopes)))
        key = (platform.issuer, platform.client_id, wanted)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        form = urlencode({"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                          "client_assertion": self.assertion(platform), "scope": wanted}).encode()
        answer = self.transport.request("POST", platform.token_url, body=form, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
        data = answer.json()
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token or len(token) > 8192:
            raise PlatformError("the platform's token endpoint gave no access_token")
        if str(data.get("token_type", "bearer")).lower() != "bearer":
            raise PlatformError("the platform's token is not a bearer token")
        try:
            life = float(data.get("expires_in", 3600))
        except (TypeError, ValueError):
            life = 3600.0
        with self._lock:
            self._cache[key] = (time.monotonic() + max(0.0, min(life, 86400.0) - MARGIN), token)
        return token

    def forget(self, platform: Platform) -> None:
        """Drop the platform's cached tokens (it answered 401: the token was revoked)."""
        with self._lock:
            for key in [k for k in self._cache if k[:2] == (platform.issuer, platform.client_id)]:
                del self._cache[key]
