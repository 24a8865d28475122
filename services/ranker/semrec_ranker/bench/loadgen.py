"""An open-loop HTTP load generator on raw asyncio (keep-alive HTTP/1.1, loopback only).

Requests are scheduled at a fixed rate regardless of how fast answers come back, and latency is measured
from the scheduled send time, so a server that falls behind shows it in the tail (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np


@dataclass
class StepResult:
    rate: float
    sent: int
    ok: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    achieved_rps: float
    server_cpu_ms_per_request: float | None = None  # filled in by the caller that owns the server process
    error_kinds: dict[str, int] | None = None
    load_average_1m: float | None = None  # of the whole machine at the end of the step (it is shared)

    def passes(self, slo_ms: float) -> bool:
        return self.errors == 0 and self.p99_ms < slo_ms and self.achieved_rps >= 0.95 * self.rate


IDLE_RECONNECT_S = 4.0  # below uvicorn's 5 s keep-alive timeout: never reuse a connection it may close


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def post(self, path: str, body: bytes) -> int:
        if self.writer is not None and time.perf_counter() - self.last_used > IDLE_RECONNECT_S:
            self.close()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        self.last_used = time.perf_counter()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _run_step(url: str, path: str, bodies: list[bytes], rate: float, duration_s: float,
                    connections: int) -> StepResult:  # fmt: skip
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the load generator only targets loopback")
    pool: asyncio.LifoQueue[_Connection] = asyncio.LifoQueue()  # reuse the warmest connection
    for _ in range(connections):
        pool.put_nowait(_Connection(parts.hostname, parts.port or 80))
    latencies: list[float] = []
    errors = 0
    kinds: dict[str, int] = {}
    n = int(rate * duration_s)

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors
        conn = await pool.get()
        try:
            status = await conn.post(path, bodies[i % len(bodies)])
            if status != 200:
                errors += 1
                kinds[f"http {status}"] = kinds.get(f"http {status}", 0) + 1
        except (OSError, ConnectionError, ValueError, asyncio.IncompleteReadError) as exc:
            errors += 1
            kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1
            conn.close()
        finally:
            latencies.append(time.perf_counter() - scheduled)
            pool.put_nowait(conn)

    start = time.perf_counter()
    tasks = []
    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().close()
    ms = np.asarray(latencies) * 1000
    return StepResult(
        rate=rate, sent=n, ok=n - errors, errors=errors,
        p50_ms=round(float(np.percentile(ms, 50)), 2), p95_ms=round(float(np.percentile(ms, 95)), 2),
        p99_ms=round(float(np.percentile(ms, 99)), 2), max_ms=round(float(ms.max()), 2),
        achieved_rps=round(n / elapsed, 1), error_kinds=kinds or None, load_average_1m=round(os.getloadavg()[0], 1),
    )  # fmt: skip


def run_step(url: str, path: str, bodies: list[bytes], rate: float, duration_s: float, connections: int = 32) -> StepResult:
    return asyncio.run(_run_step(url, path, bodies, rate, duration_s, connections))
