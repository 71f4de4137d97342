"""How ``mpgrade serve`` runs uvicorn: bounded time and room for every client.

uvicorn's defaults let a client hold a connection as long as it likes while it sends its
request: there is no deadline for the request headers (a client that sends one header line
a minute, or never finishes them, stays connected), and any byte resets the keep-alive timer.
On a deadline night a few hundred such connections are enough to starve the LMSs. So the
server here runs with:

- a **header deadline**: the request line and headers must be complete within
  ``header_timeout`` seconds of the connection opening (or of the previous response on a
  kept-alive connection), however slowly they trickle in; else a 408 and the connection is closed;
- a **body idle timeout**: a request body that stops arriving for ``body_timeout`` seconds
  ends the connection (the route sees a disconnect);
- uvicorn's own ``timeout_keep_alive`` (idle kept-alive connections), ``limit_concurrency``
  (connections and requests at once; more get 503) and ``h11_max_incomplete_event_size``
  (request line and headers larger than this are a 400), and a listen ``backlog``.

A reverse proxy in front (TLS, docs/service.md "Slow clients") should still buffer requests
and enforce its own client timeouts and per-address connection limits: these bounds keep one
process alive, they do not tell a busy client from an attacker.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

_TIMEOUT_BODY = b"the request headers took too long to send\n"
_TIMEOUT_408 = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: "
                + str(len(_TIMEOUT_BODY)).encode() + b"\r\nConnection: close\r\n\r\n" + _TIMEOUT_BODY)


@dataclass(frozen=True)
class ClientLimits:
    """What one client may cost the server; ``mpgrade serve`` options of the same names."""

    header_timeout: float = 10.0  # seconds for the request line and all headers
    body_timeout: float = 30.0  # seconds a request body may stall between two chunks
    keep_alive: float = 5.0  # seconds an idle kept-alive connection stays open
    max_connections: int = 256  # connections and requests at once; more get 503
    max_header_bytes: int = 16 * 1024  # the request line and headers together
    backlog: int = 256  # connections the kernel queues before accept


def guarded_protocol(limits: ClientLimits) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with the header deadline and body idle timeout of ``limits``."""

    class Guarded(H11Protocol):
        """Arms a deadline whenever a request is awaited; only a complete request line and
        headers cancel it (bytes alone do not, unlike uvicorn's keep-alive timer)."""

        _header_timer: asyncio.TimerHandle | None = None
        _body_timer: asyncio.TimerHandle | None = None
        _cycle_seen: Any = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is not None and self.cycle is not self._cycle_seen:  # headers complete
                self._cycle_seen = self.cycle
                if self._header_timer is not None:
                    self._header_timer.cancel()
                    self._header_timer = None
            if self.cycle is not None and self.cycle.more_body and not self.cycle.response_complete:
                self._arm_body_timeout()  # each chunk restarts it
            elif self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None

        def on_response_complete(self) -> None:
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_header_deadline()  # the next request on this connection has the same bound

        def _arm_header_deadline(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(limits.header_timeout, self._headers_too_slow)

        def _arm_body_timeout(self) -> None:
            if self._body_timer is not None:
                self._body_timer.cancel()
            self._body_timer = self.loop.call_later(limits.body_timeout, self._body_too_slow)

        def _cancel(self) -> None:
            for timer in (self._header_timer, self._body_timer):
                if timer is not None:
                    timer.cancel()
            self._header_timer = self._body_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is None or self.cycle.response_complete:  # nothing of ours is being sent
                self.logger.warning("closing a connection whose request headers took over %g s",
                                    limits.header_timeout)
                self.transport.write(_TIMEOUT_408)
            self.transport.close()

        def _body_too_slow(self) -> None:
            self._body_timer = None
            if not self.transport.is_closing():
                self.logger.warning("closing a connection whose request body stalled for %g s",
                                    limits.body_timeout)
                self.transport.close()

    return Guarded


def server_config(app: Any, host: str, port: int, limits: ClientLimits = ClientLimits(),
                  **extra: Any) -> Any:
    """The ``uvicorn.Config`` ``mpgrade serve`` runs ``app`` with (tests build the same one)."""
    import uvicorn

    return uvicorn.Config(
        app, host=host, port=port, http=guarded_protocol(limits), ws="none", lifespan="on",
        timeout_keep_alive=max(1, round(limits.keep_alive)), limit_concurrency=limits.max_connections,
        h11_max_incomplete_event_size=limits.max_header_bytes, backlog=limits.backlog,
        server_header=False, **extra)
