"""Hostile clients against a real `semrec serve` process (loopback only, real redis-server), its resident
memory measured before and after with psutil: header bombs, slow and idle sockets, oversized bodies, bad
Unicode, hundreds of sockets at once and event floods. Bounds: no 5xx answer at all, every slow or idle
socket closed by the server, and RSS growth under RSS_GROWTH_BOUND over the whole barrage."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import free_port
from semrec.settings import redis_settings
from semrec.store import keys, publish_bundle
from serving_helpers import ready_version, tiny_bundle, wait_until

psutil = pytest.importorskip("psutil")

RSS_GROWTH_BOUND = 40 * 2**20  # bytes; the unbounded server grew by 173 MiB on one 100 MiB header
HEADER_TIMEOUT_S = 1.5
BODY_TIMEOUT_S = 1.5
KEEP_ALIVE_S = 1.5
EVENTS_TOKEN = "events-token-hostile"


@pytest.fixture(scope="module")
def ranker(tmp_path_factory):
    from conftest import RedisServer

    redis = RedisServer(tmp_path_factory.mktemp("hostile-redis"))
    publish_bundle(redis_settings(redis.url).client(), "shop", tiny_bundle(300))
    port = free_port()
    env = {**os.environ, "SEMREC_REDIS_URL": redis.url, "SEMREC_CATALOG": "shop", "SEMREC_HISTORY_CAP": "50",
           "SEMREC_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S), "SEMREC_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
           "SEMREC_KEEP_ALIVE_S": str(KEEP_ALIVE_S), "SEMREC_MAX_BODY_BYTES": "65536",
           "SEMREC_EVENTS_TOKEN": EVENTS_TOKEN, "SEMREC_LOG_LEVEL": "warning"}  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "semrec.cli", "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _ready(base), timeout=90), "semrec serve did not come up"
        yield base, port, psutil.Process(process.pid), redis
    finally:
        process.terminate()
        process.wait(20)
        redis.stop()


def _ready(base: str) -> bool:
    try:
        return ready_version(base) == "1"
    except httpx.HTTPError:
        return False


class Tally:
    def __init__(self) -> None:
        self.statuses: dict[str, dict[int, int]] = {}

    def add(self, kind: str, status: int) -> None:
        per_kind = self.statuses.setdefault(kind, {})
        per_kind[status] = per_kind.get(status, 0) + 1

    def server_errors(self) -> dict[str, int]:
        return {k: n for k, v in self.statuses.items() if (n := sum(c for s, c in v.items() if s >= 500))}


async def _status_of(reader: asyncio.StreamReader, timeout: float = 10) -> int:
    line = await asyncio.wait_for(reader.readline(), timeout)
    return int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else 0  # 0: closed without an answer


async def _closed(reader: asyncio.StreamReader, timeout: float) -> bool:
    try:
        while await asyncio.wait_for(reader.read(65536), timeout):
            pass
        return True
    except (ConnectionError, OSError):
        return True
    except TimeoutError:
        return False


async def _header_bomb(port: int, total: int, piece: bytes, tally: Tally, kind: str) -> int:
    """Stream header lines until the server answers or closes; returns the bytes it accepted."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        while sent < total:
            writer.write(piece)
            await writer.drain()
            sent += len(piece)
            if reader.at_eof() or writer.is_closing():
                break
            await asyncio.sleep(0)
    except (ConnectionError, OSError):
        pass
    try:
        tally.add(kind, await _status_of(reader, 5))
    except (ConnectionError, OSError, TimeoutError):
        tally.add(kind, 0)
    writer.close()
    return sent


async def _slow_sockets(port: int, n: int, prefix: bytes) -> list[bool]:
    """Open n sockets that send `prefix` then nothing; True for each one the server closed in time."""
    pairs = [await asyncio.open_connection("127.0.0.1", port) for _ in range(n)]
    for _, writer in pairs:
        if prefix:
            writer.write(prefix)
    limit = max(HEADER_TIMEOUT_S, BODY_TIMEOUT_S) + 6.0
    closed = await asyncio.gather(*(_closed(reader, limit) for reader, _ in pairs))
    for _, writer in pairs:
        writer.close()
    return list(closed)


async def _request(port: int, raw: bytes, tally: Tally, kind: str) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        await writer.drain()
        tally.add(kind, await _status_of(reader))
        writer.close()
    except (ConnectionError, OSError):
        tally.add(kind, 0)


def _post(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s"
            b"Connection: close\r\n\r\n%s" % (path.encode(), len(body), extra, body))  # fmt: skip


BAD_UNICODE = [
    b'{"history": ["\\ud800"]}', b'{"history": ["i1"], "exclude": ["\\udc00"]}', b'{"user_id": "\\udbff"}',
    b'{"history": ["\xff\xfe"]}', b'{"history": ["i1\x00"]}', b'{"history": [' + b'"\\u0000",' * 50 + b'"i1"]}',
    b'\xef\xbb\xbf{"history": ["i1"]}', b'{"history": ["' + "é".encode() * 200 + b'"]}',
]  # fmt: skip


def _socket_slack(piece: int) -> int:
    """The most a client can write before it sees a server that read only one request head: its own send
    buffer (tcp_wmem max), the server's receive buffer before autotuning (tcp_rmem default), a piece in flight
    either side, and the head limit."""
    try:
        wmem = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
        rmem = int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        wmem, rmem = 4 * 2**20, 128 * 2**10
    return wmem + rmem + 2 * piece + 16 * 2**10


async def _barrage(port: int, tally: Tally) -> dict:
    measured: dict = {}
    # one 100 MiB header (in 64 KiB lines), then 50 MiB of 1 KiB header lines over 20 connections
    measured["bytes_accepted_of_100MiB_header"] = await _header_bomb(
        port, 100 * 2**20, b"X-Bomb: " + b"a" * 65528 + b"\r\n", tally, "header_bomb_100MiB")  # fmt: skip
    accepted = await asyncio.gather(*(
        _header_bomb(port, 50 * 2**20 // 20, b"X-" + b"b" * 1020 + b"\r\n", tally, "header_lines_1KiB")
        for _ in range(20)))  # fmt: skip
    measured["max_bytes_accepted_of_1KiB_lines"] = max(accepted)

    # 200 slow-header, 100 slow-body and 200 idle sockets at once
    slow = await asyncio.gather(
        _slow_sockets(port, 200, b"POST /recommend HTTP/1.1\r\nHost: x\r\n"),
        _slow_sockets(port, 100, _post("/recommend", b"")[:-4].replace(b"Content-Length: 0", b"Content-Length: 9000")
                      + b"\r\n\r\n{"),
        _slow_sockets(port, 200, b""),
    )  # fmt: skip
    measured["slow_or_idle_sockets_left_open"] = sum(not c for group in slow for c in group)

    # oversized bodies, sent in full (each must read the 413) and by chunked encoding
    big = b'{"history": [' + b'"i1",' * 60_000 + b'"i1"]}'
    await asyncio.gather(*(_request(port, _post("/recommend", big), tally, "oversized_body") for _ in range(40)))
    chunked = (b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"
               b"\r\nConnection: close\r\n\r\n" + b"".join(b"10000\r\n" + b" " * 65536 + b"\r\n" for _ in range(4))
               + b"0\r\n\r\n")  # fmt: skip
    await asyncio.gather(*(_request(port, chunked, tally, "oversized_chunked") for _ in range(20)))

    # bad Unicode and malformed requests
    for body in BAD_UNICODE * 20:
        await _request(port, _post("/recommend", body), tally, "bad_unicode")
    for raw in (b"GET /items/%ED%A0%80/similar HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                b"GET /items/\xff\xfe/similar HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64):  # a TLS hello
        for _ in range(10):
            await _request(port, raw, tally, "malformed")

    # 300 sockets at once, each with a real request
    good = _post("/recommend", b'{"history": ["i1", "i2"], "k": 5}')
    await asyncio.gather(*(_request(port, good, tally, "many_sockets") for _ in range(300)))

    # event floods: unknown ids (dropped) and known ids (capped, expiring) from 1,000 users
    auth = f"Authorization: Bearer {EVENTS_TOKEN}\r\n".encode()
    unknown = b'{"user_id": "flood-%d", "items": [' + b",".join(b'"junk-%d"' % i for i in range(50)) + b"]}"
    known = b'{"user_id": "known-%d", "items": [' + b",".join(b'"i%d"' % (i % 300 + 1) for i in range(50)) + b"]}"
    for template, kind in ((unknown, "events_unknown"), (known, "events_known")):
        for start in range(0, 1000, 100):
            await asyncio.gather(*(_request(port, _post("/events", template % u, auth), tally, kind)
                                   for u in range(start, start + 100)))  # fmt: skip
    await asyncio.gather(*(_request(port, _post("/events", known % 1), tally, "events_no_token") for _ in range(50)))
    return measured


def test_hostile_clients_get_no_5xx_and_memory_stays_flat(ranker):
    base, port, process, redis = ranker
    for _ in range(50):  # warm up allocator pools and code paths before the baseline
        httpx.post(f"{base}/recommend", json={"history": ["i1", "i2"]})
    rss_before = process.memory_info().rss
    start = time.monotonic()
    tally = Tally()
    measured = asyncio.run(_barrage(port, tally))
    elapsed = time.monotonic() - start
    rss_after = process.memory_info().rss
    growth = rss_after - rss_before
    print(f"\nhostile barrage: {elapsed:.1f}s, RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB, "
          f"{measured}, statuses {tally.statuses}")  # fmt: skip

    assert tally.server_errors() == {}, tally.statuses
    assert growth < RSS_GROWTH_BOUND, f"RSS grew by {growth / 2**20:.1f} MiB"
    assert measured["bytes_accepted_of_100MiB_header"] < _socket_slack(65536)
    assert measured["max_bytes_accepted_of_1KiB_lines"] < 4 * 2**20
    assert measured["slow_or_idle_sockets_left_open"] == 0
    statuses = tally.statuses
    assert set(statuses["header_bomb_100MiB"]) <= {431, 400, 0} and set(statuses["header_lines_1KiB"]) <= {431, 400, 0}
    assert statuses["oversized_body"] == {413: 40} and set(statuses["oversized_chunked"]) == {413}
    assert set(statuses["bad_unicode"]) <= {200, 400, 422} and statuses["bad_unicode"].get(422, 0) >= 80
    assert statuses["many_sockets"] == {200: 300}
    assert statuses["events_unknown"] == {200: 1000} and statuses["events_known"] == {200: 1000}
    assert statuses["events_no_token"] == {401: 50}
    client = redis_settings(redis.url).client()
    assert not client.exists(keys.user_history("shop", "flood-1"))  # unknown ids never stored
    assert client.llen(keys.user_history("shop", "known-1")) == 50 and client.ttl(keys.user_history("shop", "known-1")) > 0
    assert httpx.get(f"{base}/readyz").json()["status"] == "ready"
