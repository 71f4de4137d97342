"""POSTing a finished job to the callback URL an LMS gave with the submission.

The server makes an outgoing HTTP request to whatever http(s) URL a course's token holder
supplies: that is the point of a callback, and also why only http and https are accepted,
redirects are not followed, the body is only ever the result (or an LTI AGS score object),
each attempt has a wall-clock deadline (a server that answers slowly or never cannot hold a
delivery thread) and the answer's body is never read. Operators who must keep the server away
from internal addresses should filter its egress (README "Grading as a service", security notes).
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

FORMATS = ("result", "lti")
ATTEMPTS = 3
TIMEOUT = 10.0
MAX_URL = 2000


def check_url(url: str) -> str | None:
    """Why a callback URL is refused, or None."""
    if len(url) > MAX_URL:
        return f"the callback URL is longer than {MAX_URL} characters"
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"the callback URL cannot be parsed ({exc})"
    if parts.scheme not in ("http", "https"):
        return "the callback URL must be http:// or https://"
    if not parts.hostname:
        return "the callback URL has no host"
    if parts.username or parts.password:
        return "the callback URL must not carry credentials"
    return None


def body(document: dict[str, Any], fmt: str) -> tuple[dict[str, Any], str]:
    """What is POSTed and its content type: the result document, or an LTI AGS Score."""
    if fmt == "lti":
        from grader.export import lti_score

        return lti_score(document), "application/vnd.ims.lis.v1.score+json"
    return document, "application/json"


def post(url: str, document: dict[str, Any], fmt: str = "result", *, attempts: int = ATTEMPTS,
         timeout: float = TIMEOUT, backoff: float = 1.0) -> str:
    """Deliver once (retrying 5xx and network errors); a short status for the job record.

    ``timeout`` bounds each attempt as a whole (connecting, sending, and reading the status
    line and headers), not each read: a server that answers one byte at a time, or never,
    costs an attempt at most ``timeout`` seconds. The response body is never read.
    """
    payload, content_type = body(document, fmt)
    data = json.dumps(payload).encode()
    last = "not sent"
    for attempt in range(attempts):
        try:
            status = _attempt(url, data, content_type, timeout)
            last = f"HTTP {status}"
            if status < 500:
                return ("delivered: " if 200 <= status < 300 else "refused: ") + last
        except Exception as exc:  # network errors, timeouts, TLS, a broken answer: retried
            last = f"{type(exc).__name__}: {str(exc)[:200]}"
        if attempt + 1 < attempts:
            time.sleep(backoff * 2 ** attempt)
    return "failed: " + last


def _attempt(url: str, data: bytes, content_type: str, timeout: float) -> int:
    """One POST with a wall-clock deadline; the status code. No redirects, no proxies from the
    environment, the body of the answer left unread (the connection is closed instead)."""
    import httpcore

    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    headers = [(b"Host", host.encode("idna") if not host.isascii() else host.encode()),
               (b"User-Agent", b"mpgrade"), (b"Content-Type", content_type.encode()),
               (b"Content-Length", str(len(data)).encode()), (b"Connection", b"close")]
    deadline = time.monotonic() + timeout
    per_op = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
    with httpcore.ConnectionPool(network_backend=_DeadlineBackend(deadline), retries=0) as pool:
        with pool.stream("POST", url, headers=headers, content=data,
                         extensions={"timeout": per_op}) as response:
            return response.status


class _DeadlineBackend:
    """httpcore's socket backend, with every connect, read and write cut to what is left of
    one deadline (httpcore's own timeouts apply to each operation, not to the whole request)."""

    def __init__(self, deadline: float) -> None:
        import httpcore

        self.inner, self.deadline = httpcore.SyncBackend(), deadline

    def left(self, timeout: float | None) -> float:
        import httpcore

        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise httpcore.ReadTimeout("the callback attempt ran out of time")
        return remaining if timeout is None else min(timeout, remaining)

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None) -> Any:
        return _DeadlineStream(self.inner.connect_tcp(host, port, self.left(timeout), local_address,
                                                      socket_options), self)

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        raise OSError("callbacks go to http(s) hosts only")

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, max(0.0, self.deadline - time.monotonic())))


class _DeadlineStream:
    def __init__(self, inner: Any, backend: _DeadlineBackend) -> None:
        self.inner, self.backend = inner, backend

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, self.backend.left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # the socket timeout applies to each send: write in slices, each cut to the deadline
        for start in range(0, len(buffer), 16384):
            self.inner.write(buffer[start:start + 16384], self.backend.left(timeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> Any:
        return _DeadlineStream(self.inner.start_tls(ssl_context, server_hostname,
                                                    self.backend.left(timeout)), self.backend)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)
