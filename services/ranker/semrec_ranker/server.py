"""The HTTP server the ranker runs under: uvicorn (httptools or h11) with bounds on what a client can hold.

uvicorn bounds idle time between requests, but not how long a client may take to send its head or its body,
nor how long a fresh connection may stay silent: a few hundred sockets dribbling a byte now and then would
stay open forever. With httptools it does not bound the request head's size either (h11 bounds a head that
arrives in pieces). The guarded protocols add one deadline per connection phase:

- head: from the connection (or, on a kept-alive connection, the next request's first byte) to the end of
  the headers;
- body: from the end of the headers to the end of the body;

after which the connection is closed (the app sees a disconnect). Between requests only uvicorn's
keep-alive timer runs. They also answer 431 to a request head over
`max_header_bytes` however it arrives. Idle keep-alive and concurrency are uvicorn's own settings, filled from
`RankerSettings`.

The parser is a setting (`SEMREC_HTTP_PARSER`): httptools (llhttp, in C) by default, since h11 (pure Python)
costs a busy worker a measurable share of its CPU per request; h11 stays available with the same guards.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("semrec.ranker")


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 15.0
    max_header_bytes: int = 16 * 1024


class _Deadlines:
    """One timer per connection phase; `_expired` closes the connection. Mixed into a uvicorn protocol."""

    limits: ConnectionLimits
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any
    client: Any

    def _init_deadlines(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self._deadline: asyncio.TimerHandle | None = None
        self._phase: str | None = None

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

    def _refuse_head(self) -> None:
        body = f"request head over {self.limits.max_header_bytes} bytes".encode()
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
                             b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
        self._disarm()
        self.transport.close()


class GuardedH11Protocol(_Deadlines, H11Protocol):
    """uvicorn's h11 protocol with a deadline for the request head and one for the body."""

    def __init__(self, *args: Any, limits: ConnectionLimits = ConnectionLimits(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_deadlines(limits)
        self._head_bytes = 0  # of the request head being received
        self._tail = b""  # its last 3 bytes, to find a CRLFCRLF split over two reads

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("head", self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            if self._head_too_big(data):
                self._refuse_head()
                return
            if self._phase is None:  # the first byte of a request on a kept-alive connection
                self._arm("head", self.limits.header_timeout_s)
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
        return too_big

    def on_response_complete(self) -> None:
        super().on_response_complete()  # arms uvicorn's keep-alive timer for the idle wait
        self._disarm()
        if self.conn.their_state is not h11.IDLE:
            self._follow_state()  # a pipelined request has already started

    def _follow_state(self) -> None:
        if self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state  # IDLE: the head deadline (connect or first byte) or keep-alive runs
        if state is h11.SEND_BODY:
            if self._phase != "body":
                self._arm("body", self.limits.body_timeout_s)
        elif state is not h11.IDLE:  # the request is complete: the app's time is not the client's to spend
            self._disarm()


class _HeadTooBig(Exception):
    pass


class GuardedHttpToolsProtocol(_Deadlines, HttpToolsProtocol):
    """uvicorn's httptools protocol with the same deadlines and a bound on the request head's size.

    The parser's callbacks say where a request is: between messages (waiting for a head), in its head (URL
    and headers, counted against `max_header_bytes`), in its body, or complete (the app's time).
    """

    def __init__(self, *args: Any, limits: ConnectionLimits = ConnectionLimits(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_deadlines(limits)
        self._state = "between"  # between | head | body | complete
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("head", self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._state == "between" and self._phase is None:  # a request's first byte on a kept-alive connection
            self._arm("head", self.limits.header_timeout_s)
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        if self._state == "head" and self._head_bytes > self.limits.max_header_bytes:
            self._refuse_head()  # the parser stopped on our callback's error: answer what it was
            return
        self._disarm()
        super().send_400_response(msg)

    # parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._state, self._head_bytes = "head", 0
        if self._phase != "head":
            self._arm("head", self.limits.header_timeout_s)

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.limits.max_header_bytes:
            raise _HeadTooBig  # httptools stops parsing; `send_400_response` answers 431

    def on_headers_complete(self) -> None:
        self._state = "body"
        self._arm("body", self.limits.body_timeout_s)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._state = "complete"  # the app's time is not the client's to spend
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        queued = bool(self.pipeline)  # a complete pipelined request starts now: still the app's time
        super().on_response_complete()  # arms uvicorn's keep-alive timer for the idle wait
        if self.transport.is_closing():
            self._disarm()
        elif self._state == "complete" and not queued:
            self._state = "between"  # idle: uvicorn's keep-alive timer runs until the next request's first byte


PROTOCOLS = {"httptools": GuardedHttpToolsProtocol, "h11": GuardedH11Protocol}


def uvicorn_options(settings) -> dict[str, Any]:
    """uvicorn.run / uvicorn.Config keyword arguments that bound what clients can hold (see module docstring)."""
    limits = ConnectionLimits(header_timeout_s=settings.header_timeout_s, body_timeout_s=settings.body_timeout_s,
                              max_header_bytes=settings.max_header_bytes)  # fmt: skip
    return {
        "http": functools.partial(PROTOCOLS[settings.http_parser], limits=limits),
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": settings.keep_alive_s,
        "limit_concurrency": settings.limit_concurrency,
        "ws": "none",
    }
