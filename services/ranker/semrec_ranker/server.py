"""The HTTP server the ranker runs under: uvicorn with h11 and bounds on what a client can hold.

uvicorn bounds request head size (h11's incomplete-event limit) and idle time between requests, but not how
long a client may take to send its head or its body, nor how long a fresh connection may stay silent: a few
hundred sockets dribbling a byte now and then would stay open forever. `GuardedH11Protocol` adds one deadline
per connection phase:

- head: from the connection (or the first byte after a response) to the end of the headers;
- body: from the end of the headers to the end of the body;

after which the connection is closed (the app sees a disconnect). It also answers 431 to a request head over
`max_header_bytes` even when the head arrives in one read (h11 only bounds a head that arrives in pieces).
Idle keep-alive and concurrency are uvicorn's own settings, filled from `RankerSettings`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("semrec.ranker")


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 15.0
    max_header_bytes: int = 16 * 1024


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for the request head and one for the body."""

    def __init__(self, *args: Any, limits: ConnectionLimits = ConnectionLimits(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._deadline: asyncio.TimerHandle | None = None
        self._phase: str | None = None
        self._head_bytes = 0  # of the request head being received
        self._tail = b""  # its last 3 bytes, to find a CRLFCRLF split over two reads

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("head", self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self._head_too_big(data):
            return
        super().data_received(data)
        self._follow_state()

    def _head_too_big(self, data: bytes) -> bool:
        """h11 limits only a head that arrives in pieces; this counts one that arrives in a single read too."""
        end = (self._tail + data).find(b"\r\n\r\n")
        self._head_bytes += len(data) if end < 0 else end + 4 - len(self._tail)
        self._tail = b"" if end >= 0 else (self._tail + data)[-3:]
        if end >= 0:
            too_big, self._head_bytes = self._head_bytes > self.limits.max_header_bytes, 0
        else:
            too_big = self._head_bytes > self.limits.max_header_bytes
        if not too_big:
            return False
        body = f"request head over {self.limits.max_header_bytes} bytes".encode()
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
                             b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
        self._disarm()
        self.transport.close()
        return True

    def on_response_complete(self) -> None:
        super().on_response_complete()  # arms uvicorn's keep-alive timer for the idle wait
        self._disarm()
        self._follow_state()  # a pipelined request may already have started

    def _follow_state(self) -> None:
        if self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            if self._phase is None:  # the head's deadline runs from its first byte (or the connect)
                self._arm("head", self.limits.header_timeout_s)
        elif state is h11.SEND_BODY:
            if self._phase != "body":
                self._arm("body", self.limits.body_timeout_s)
        else:  # the request is complete: the app's time is not the client's to spend
            self._disarm()

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._expired, phase)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._phase = None

    def _expired(self, phase: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        log.debug("closing a connection from %s: request %s not received in time", self.client, phase)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()


def uvicorn_options(settings) -> dict[str, Any]:
    """uvicorn.run / uvicorn.Config keyword arguments that bound what clients can hold (see module docstring)."""
    limits = ConnectionLimits(header_timeout_s=settings.header_timeout_s, body_timeout_s=settings.body_timeout_s,
                              max_header_bytes=settings.max_header_bytes)  # fmt: skip
    return {
        "http": functools.partial(GuardedH11Protocol, limits=limits),
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": settings.keep_alive_s,
        "limit_concurrency": settings.limit_concurrency,
        "ws": "none",
    }
