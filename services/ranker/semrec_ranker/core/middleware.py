"""Pure ASGI middleware: request latency metrics per route template and status, and a body size limit."""

from __future__ import annotations

import time

import orjson

from semrec_ranker.core.metrics import Metrics


async def _reply(send, status: int, detail: str, close: bool = False) -> None:
    body = orjson.dumps({"detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _discard(receive, limit: int) -> bool:
    """Read and drop up to `limit` bytes of the request body; True if the whole body was read. A client that
    writes its whole body before reading then sees the 413 instead of a reset connection."""
    seen = 0
    while seen <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return False
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


class ObservabilityMiddleware:
    def __init__(self, app, metrics: Metrics, max_body_bytes: int, max_discard_bytes: int = 1024 * 1024) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.max_discard_bytes = max_discard_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status_code = 500

        async def send_wrapper(message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            receive = await self._limited(scope, receive, send_wrapper)
            if receive is not None:
                await self.app(scope, receive, send_wrapper)
        except Exception:
            self.metrics.errors.labels(self._endpoint(scope), "exception").inc()
            raise
        finally:
            endpoint = self._endpoint(scope)
            self.metrics.request_seconds.labels(endpoint, scope["method"], str(status_code)).observe(
                time.perf_counter() - start
            )
            if status_code >= 500:
                self.metrics.errors.labels(endpoint, str(status_code)).inc()

    @staticmethod
    def _endpoint(scope) -> str:
        route = scope.get("route")
        return getattr(route, "path", "unmatched")

    async def _limited(self, scope, receive, send):
        """`receive`, or a replay of the buffered body; None after answering 413 for an oversized body."""
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body_bytes
            except ValueError:
                await _reply(send, 400, "invalid Content-Length")
                return None
            if too_big:
                drained = await _discard(receive, self.max_discard_bytes)
                await _reply(send, 413, f"request body over {self.max_body_bytes} bytes", close=not drained)
                return None
            return receive
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            return receive
        chunks, size = [], 0  # chunked upload without a length: read it under the limit, then replay
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return receive
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                drained = not message.get("more_body", False) or await _discard(receive, self.max_discard_bytes)
                await _reply(send, 413, f"request body over {self.max_body_bytes} bytes", close=not drained)
                return None
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay
