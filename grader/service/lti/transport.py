"""Every request the LTI tool makes to a platform, fenced like a callback.

A platform's URLs come from its registration (written by an operator) and from launches
(written by the platform): the JWK set, the token endpoint, the roster and the gradebook. Each
request goes through :class:`grader.service.callbacks.Egress` exactly as a callback does (the
host resolved once per attempt, every answer checked, the connection made to the checked
address; loopback, private and metadata addresses only with ``--callback-allow``), with one
wall-clock deadline per attempt, no redirects and no proxies from the environment. Unlike a
callback the answer's body is read, up to ``max_bytes`` (a platform that streams forever
costs one capped read). 5xx answers and network errors are retried with exponential backoff;
a refusal by the egress policy, a 4xx or an oversized answer is final.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from grader.service import callbacks

MAX_BYTES = 1024 * 1024  # the largest answer read from a platform (a roster page, a JWK set)


class PlatformError(Exception):
    """A request to the platform did not get a usable answer; the message says why (one line)."""


class Final(PlatformError):
    """A failure that another attempt would not change (refused address, oversized answer)."""


@dataclass(frozen=True)
class Answer:
    """A platform's answer: status, headers (lower-case names; repeated ones joined by ", ")
    and the body (at most ``max_bytes``)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The body as JSON; PlatformError when it is not."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PlatformError(f"the platform's answer is not JSON ({exc})") from None


@dataclass(frozen=True)
class Transport:
    """How requests reach platforms: the egress policy and the retry schedule."""

    egress: callbacks.Egress = callbacks.PUBLIC_ONLY
    attempts: int = callbacks.ATTEMPTS
    backoff: float = 0.5
    timeout: float = callbacks.TIMEOUT

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                body: bytes = b"", max_bytes: int = MAX_BYTES, ok: tuple[int, ...] = (200, 201)) -> Answer:
        """One request, retried on 5xx and network errors; PlatformError unless the status is in
        ``ok`` (the message names the URL's host and the status, never a token)."""
        last = "not sent"
        for attempt in range(max(1, self.attempts)):
            try:
                answer = self._once(method, url, headers or {}, body, max_bytes)
            except callbacks.Refused as exc:
                raise Final(f"blocked: {str(exc)[:250]}") from None
            except Final:
                raise
            except Exception as exc:  # network errors, timeouts, TLS, a broken answer: retried
                last = f"{type(exc).__name__}: {str(exc)[:200]}"
            else:
                if answer.status in ok:
                    return answer
                last = f"HTTP {answer.status}"
                if answer.status < 500:
                    raise Final(f"{method} {_where(url)}: {last} {_snippet(answer.body)}".rstrip())
            if attempt + 1 < self.attempts:
                time.sleep(self.backoff * 2 ** attempt)
        raise PlatformError(f"{method} {_where(url)}: {last} after {self.attempts} attempt(s)")

    def _once(self, method: str, url: str, headers: dict[str, str], body: bytes, max_bytes: int) -> Answer:
        import httpcore

        why = callbacks.check_url(url, self.egress)
        if why is not None:
            raise callbacks.Refused(why.replace("the callback URL", "the platform's URL"))
        host, port = callbacks.destination(url)
        netloc = urlsplit(url).netloc
        sent = [(b"Host", netloc.encode("idna") if not netloc.isascii() else netloc.encode()),
                (b"User-Agent", b"mpgrade-lti"), (b"Connection", b"close")]
        sent += [(k.encode(), v.encode()) for k, v in headers.items()]
        if body or method in ("POST", "PUT"):
            sent.append((b"Content-Length", str(len(body)).encode()))
        deadline = time.monotonic() + self.timeout
        address = self.egress.pick(host, port)  # every attempt: a rebinding answer is checked too
        per_op = {"connect": self.timeout, "read": self.timeout, "write": self.timeout, "pool": self.timeout}
        backend = callbacks._DeadlineBackend(deadline, address, port)  # one deadline per attempt
        with httpcore.ConnectionPool(network_backend=backend, retries=0) as pool:
            with pool.stream(method, url, headers=sent, content=body, extensions={"timeout": per_op}) as response:
                got: dict[str, str] = {}
                for name, value in response.headers:
                    key = name.decode("latin-1").lower()
                    text = value.decode("latin-1")
                    got[key] = f"{got[key]}, {text}" if key in got else text
                chunks, size = [], 0
                for chunk in response.iter_stream():
                    size += len(chunk)
                    if size > max_bytes:
                        raise Final(f"{method} {_where(url)}: the answer is larger than {max_bytes} bytes")
                    chunks.append(chunk)
                return Answer(response.status, got, b"".join(chunks))


def _where(url: str) -> str:
    """A URL as error messages show it: scheme, host and path, no query (it may hold ids)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"[:200]


def _snippet(body: bytes) -> str:
    text = body[:200].decode("utf-8", "replace")
    return " ".join(text.split())
