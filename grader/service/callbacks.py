"""POSTing a finished job to the callback URL an LMS gave with the submission.

The server makes an outgoing HTTP request to whatever http(s) URL a course's token holder
supplies: that is the point of a callback, and also why it is fenced in (README "Grading as a
service", docs/service.md "Callbacks"):

- **Where it may go** (:class:`Egress`): only http and https, and only to public addresses.
  Loopback, private, link-local (cloud metadata at 169.254.169.254), shared, multicast,
  reserved and unspecified addresses are refused, also when written as an IPv4-mapped IPv6
  address, a 6to4/NAT64/Teredo address, or a decimal/octal/hex IPv4 form. The check runs on
  the address the name *resolves to*, on every attempt, and the connection goes to exactly that
  checked address (no second lookup that a DNS-rebinding server could answer differently). An
  operator whose LMS is on a private network allows its networks explicitly
  (``mpgrade serve --callback-allow 10.0.0.0/8``).
- **What it costs** (:class:`Deliveries`): every destination (host and port) has its own queue
  and at most ``per_destination`` sending threads, so an LMS that accepts connections and never
  answers holds only its own callbacks, never another course's; and every course at most
  ``per_course`` threads, so a course whose many callback URLs are all dead cannot take the
  whole delivery capacity from the others.
- **What is sent**: only the result (or an LTI AGS score object), with an ``Idempotency-Key``
  (job id and delivery number) that stays the same when one delivery is retried or sent again
  after a restart, so a receiver can drop duplicates; redirects are not followed; each attempt
  has a wall-clock deadline; the answer's body is never read.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("mpgrade.service")
FORMATS = ("result", "lti")
ATTEMPTS = 3
TIMEOUT = 10.0
MAX_URL = 2000
PER_DESTINATION = 2  # sending threads one callback host may hold
PER_COURSE = 8  # sending threads one course's callbacks may hold, whatever their hosts
MAX_THREADS = 32  # sending threads in all
WITHHELD = "withheld: "  # an LTI callback for a result that is not a grade: nothing was sent
BLOCKED = "blocked: "  # the start of a callback status the egress policy refused (never retried)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Refused(Exception):
    """The egress policy does not let a callback reach this address."""


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the system resolver: /etc/hosts, then DNS)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def numeric(host: str) -> IPAddress | None:
    """``host`` as an address if it is one in any form the C resolver accepts (``2130706433``,
    ``0177.0.0.1``, ``127.1``, ``[::ffff:127.0.0.1]``); None for a name. No lookup is made."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(str(infos[0][4][0]).split("%")[0]) if infos else None


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64, Teredo), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def internal(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address a callback may reach, or None."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        why = internal(inner)
        return f"{why} (as {ip})" if why else None
    for test, why in (("is_unspecified", "an unspecified address"), ("is_loopback", "a loopback address"),
                      ("is_link_local", "a link-local address (cloud metadata lives there)"),
                      ("is_multicast", "a multicast address"), ("is_private", "a private address"),
                      ("is_reserved", "a reserved address")):
        if getattr(ip, test):
            return why
    if not ip.is_global:
        return "not a public address"
    return None


def networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``--callback-allow`` values as networks; ValueError names a bad one."""
    out = []
    for cidr in cidrs:
        try:
            out.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"--callback-allow {cidr!r} is not an address or network ({exc})") from None
    return tuple(out)


@dataclass(frozen=True)
class Egress:
    """Which addresses callbacks may reach: public ones, plus the networks in ``allow``.

    ``resolver`` is the name lookup (tests pass a stub; nothing else should)."""

    allow: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=resolve, compare=False)

    def why_not(self, ip: IPAddress) -> str | None:
        """Why a callback may not connect to ``ip``, or None."""
        candidates = [ip] + ([inner] if (inner := embedded_ipv4(ip)) is not None else [])
        if any(c in net for c in candidates for net in self.allow if c.version == net.version):
            return None
        why = internal(ip)
        return f"{ip} is {why}; an operator can allow it with --callback-allow" if why else None

    def check_literal(self, host: str) -> str | None:
        """At submission time: why a host written as an address is refused (names are looked
        up, and checked, only when the callback is sent)."""
        ip = numeric(host)
        return None if ip is None else self.why_not(ip)

    def pick(self, host: str, port: int) -> str:
        """The address to connect to: ``host`` resolved once and every answer checked.

        One refused answer refuses them all: a name that resolves to a public and an internal
        address is a rebinding attempt, not a choice."""
        ip = numeric(host)
        found = [str(ip)] if ip is not None else list(self.resolver(host, port))
        if not found:
            raise OSError(f"{host} resolves to no address")
        for address in found:
            why = self.why_not(ipaddress.ip_address(address.split("%")[0]))
            if why:
                raise Refused(f"{host} -> {why}")
        return found[0]


PUBLIC_ONLY = Egress()


def check_url(url: str, egress: Egress = PUBLIC_ONLY) -> str | None:
    """Why a callback URL is refused, or None."""
    if len(url) > MAX_URL:
        return f"the callback URL is longer than {MAX_URL} characters"
    if any(ord(c) < 33 or ord(c) == 127 for c in url) or "\\" in url:
        return "the callback URL has spaces, control characters or backslashes"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        return f"the callback URL cannot be parsed ({exc})"
    if parts.scheme not in ("http", "https"):
        return "the callback URL must be http:// or https://"
    if "@" in parts.netloc or parts.username or parts.password:
        return "the callback URL must not carry credentials"
    if not parts.hostname:
        return "the callback URL has no host"
    why = egress.check_literal(parts.hostname)
    return f"the callback URL's host {why}" if why else None


def destination(url: str) -> tuple[str, int]:
    """The (host, port) a callback goes to: what its delivery queue is keyed on."""
    parts = urlsplit(url)
    return (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


def body(document: dict[str, Any], fmt: str) -> tuple[dict[str, Any], str]:
    """What is POSTed and its content type: the result document, or an LTI AGS Score.

    An LTI Score exists only for a grade: ``grader.export.lti_score`` raises ``Withheld`` for
    an error or timeout result (any Score would change the platform's grade), and :func:`post`
    then sends nothing (``withheld: ...``)."""
    if fmt == "lti":
        from grader.export import lti_score

        return lti_score(document), "application/vnd.ims.lis.v1.score+json"
    return document, "application/json"


def post(url: str, document: dict[str, Any], fmt: str = "result", *, attempts: int = ATTEMPTS,
         timeout: float = TIMEOUT, backoff: float = 1.0, egress: Egress = PUBLIC_ONLY,
         key: str | None = None, payload: dict[str, Any] | None = None) -> str:
    """Deliver once (retrying 5xx and network errors); a short status for the job record.

    ``timeout`` bounds each attempt as a whole (connecting, sending, and reading the status
    line and headers), not each read: a server that answers one byte at a time, or never,
    costs an attempt at most ``timeout`` seconds. The response body is never read. Every
    attempt resolves the host again and checks the answer against ``egress`` (a refusal is
    final: ``blocked: ...``). ``key`` is sent as ``Idempotency-Key`` on every attempt;
    ``payload`` replaces what :func:`body` would make of ``document`` (a not-gradable notice).
    """
    if payload is None:
        from grader.export import Withheld

        try:
            payload, content_type = body(document, fmt)
        except Withheld as exc:  # not a grade: no Score, so the platform keeps what it has
            return WITHHELD + str(exc)[:250]
    else:
        content_type = "application/vnd.ims.lis.v1.score+json" if fmt == "lti" else "application/json"
    data = json.dumps(payload).encode()
    last = "not sent"
    for attempt in range(attempts):
        try:
            status = _attempt(url, data, content_type, timeout, egress, key, attempt + 1)
            last = f"HTTP {status}"
            if status < 500:
                return ("delivered: " if 200 <= status < 300 else "refused: ") + last
        except Refused as exc:
            return BLOCKED + str(exc)[:250]
        except Exception as exc:  # network errors, timeouts, TLS, a broken answer: retried
            last = f"{type(exc).__name__}: {str(exc)[:200]}"
        if attempt + 1 < attempts:
            time.sleep(backoff * 2 ** attempt)
    return "failed: " + last


def _attempt(url: str, data: bytes, content_type: str, timeout: float, egress: Egress = PUBLIC_ONLY,
             key: str | None = None, attempt: int = 1) -> int:
    """One POST with a wall-clock deadline; the status code. The host is resolved and checked
    here, and the connection made to the checked address (TLS still verifies the host name).
    No redirects, no proxies from the environment, the body of the answer left unread (the
    connection is closed instead)."""
    import httpcore

    why = check_url(url, egress)
    if why is not None:
        raise Refused(why)
    parts = urlsplit(url)
    host, port = destination(url)
    netloc = parts.netloc
    headers = [(b"Host", netloc.encode("idna") if not netloc.isascii() else netloc.encode()),
               (b"User-Agent", b"mpgrade"), (b"Content-Type", content_type.encode()),
               (b"Content-Length", str(len(data)).encode()), (b"Connection", b"close")]
    if key:
        headers += [(b"Idempotency-Key", key.encode()), (b"X-Mpgrade-Attempt", str(attempt).encode())]
    deadline = time.monotonic() + timeout
    address = egress.pick(host, port)  # inside the attempt: a rebinding answer is checked too
    per_op = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
    backend = _DeadlineBackend(deadline, address, port)
    with httpcore.ConnectionPool(network_backend=backend, retries=0) as pool:
        with pool.stream("POST", url, headers=headers, content=data,
                         extensions={"timeout": per_op}) as response:
            return response.status


class _DeadlineBackend:
    """httpcore's socket backend, with every connect, read and write cut to what is left of
    one deadline (httpcore's own timeouts apply to each operation, not to the whole request)."""

    def __init__(self, deadline: float, address: str, port: int) -> None:
        import httpcore

        self.inner, self.deadline = httpcore.SyncBackend(), deadline
        self.address, self.port = address, port

    def left(self, timeout: float | None) -> float:
        import httpcore

        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise httpcore.ReadTimeout("the callback attempt ran out of time")
        return remaining if timeout is None else min(timeout, remaining)

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None) -> Any:
        # the checked address, whatever name httpcore was given: it is never looked up again
        return _DeadlineStream(self.inner.connect_tcp(self.address, self.port, self.left(timeout),
                                                      local_address, socket_options), self)

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


class Deliveries:
    """Callback sending, isolated per destination and per course: each (course, host, port) has
    its own queue; at most ``per_destination`` threads send to one host and port (whichever
    course), at most ``per_course`` threads send one course's callbacks (whatever the hosts) and
    at most ``max_threads`` run in all.

    A thread exists only while there is work it may take, so a thousand LMS hosts cost nothing
    when idle. An LMS that never answers keeps at most ``per_destination`` threads busy (each
    attempt ends at its deadline) and a course whose callbacks all go to dead hosts at most
    ``per_course``; every other destination and course is served by the threads left. A thread
    that finishes a delivery takes the next one that is allowed, queues in turn (round robin),
    so a freed place goes to whoever waits, not to the queue that had it.
    """

    def __init__(self, per_destination: int = PER_DESTINATION, max_threads: int = MAX_THREADS,
                 per_course: int = PER_COURSE) -> None:
        self.per_destination, self.max_threads = max(1, per_destination), max(1, max_threads)
        self.per_course = max(1, per_course)
        self._queues: dict[tuple[str, str, int], deque[Callable[[], None]]] = {}  # in turn: dicts keep order
        self._by_destination: dict[tuple[str, int], int] = {}  # threads sending, per destination
        self._by_course: dict[str, int] = {}  # threads sending, per course
        self._lock = threading.Lock()
        self._threads = 0
        self._closed = False

    def submit(self, url: str, work: Callable[[], None], course: str = "") -> None:
        """Run ``work`` (one delivery of ``course`` to ``url``) on a sending thread, in turn."""
        key = (course, *destination(url))
        with self._lock:
            if self._closed:
                return
            self._queues.setdefault(key, deque()).append(work)
            self._fill()

    def _next(self) -> tuple[tuple[str, str, int], Callable[[], None]] | None:
        """With the lock held: the first queued delivery whose course and destination have room
        (its place is taken and its queue moved to the back), or None."""
        for key, queue in self._queues.items():
            course, dest = key[0], key[1:]
            if (self._by_course.get(course, 0) < self.per_course
                    and self._by_destination.get(dest, 0) < self.per_destination):
                work = queue.popleft()
                del self._queues[key]
                if queue:
                    self._queues[key] = queue  # to the back: the next turn is another queue's
                self._by_course[course] = self._by_course.get(course, 0) + 1
                self._by_destination[dest] = self._by_destination.get(dest, 0) + 1
                return key, work
        return None

    def _done(self, key: tuple[str, str, int]) -> None:
        """With the lock held: ``key``'s delivery ended; its places are free again."""
        _release(self._by_course, key[0])
        _release(self._by_destination, key[1:])

    def _fill(self) -> None:
        """With the lock held: new threads while there is allowed work and room for them."""
        while not self._closed and self._threads < self.max_threads:
            picked = self._next()
            if picked is None:
                return
            self._threads += 1
            threading.Thread(target=self._serve, args=picked, name=f"mpgrade-callback-{picked[0][1][:40]}",
                             daemon=True).start()

    def _serve(self, key: tuple[str, str, int], work: Callable[[], None]) -> None:
        while True:
            try:
                work()
            except Exception:  # one delivery's bug must not end the thread
                log.exception("a callback delivery failed")
            with self._lock:
                self._done(key)
                picked = None if self._closed else self._next()
                if picked is None:
                    self._threads -= 1
                    self._fill()  # a freed place may let another queue's delivery start
                    return
                key, work = picked
                self._fill()  # the end of one delivery can free two queues (its course, its host)

    def pending(self) -> int:
        """Deliveries queued and not yet started (all destinations)."""
        with self._lock:
            return sum(len(q) for q in self._queues.values())

    def shutdown(self) -> None:
        """No new deliveries; queued ones are dropped (they are owed again at the next start)."""
        with self._lock:
            self._closed = True


def _release(counts: dict[Any, int], name: Any) -> None:
    """One thread fewer for ``name``; a name without threads is forgotten."""
    counts[name] -= 1
    if not counts[name]:
        del counts[name]
