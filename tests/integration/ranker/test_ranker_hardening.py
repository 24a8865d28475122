"""The ranker against abuse and faults: real redis-server, real uvicorn (the `semrec serve` protocol and
limits) on loopback, real ONNX Runtime. One test per defect a hostile review found."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import orjson
import pytest
from conftest import RedisServer, free_port
from hardening_helpers import hardened_ranker
from onnx import TensorProto, helper
from pydantic import SecretStr
from semrec.bundle import Bundle
from semrec.settings import redis_settings
from semrec.store import keys, load_bundle, publish_bundle, read_manifest
from semrec_ranker.core.config import RankerSettings
from serving_helpers import ready_version, tiny_bundle, wait_until

KEY = b"k" * 32
TOKEN = "admin-token-for-tests"


def _settings(redis_server, **overrides) -> RankerSettings:
    values = {"redis_url": SecretStr(redis_server.url), "catalog": "shop", "poll_interval_s": 0.3,
              "admin_token": SecretStr(TOKEN), "history_cap": 20, "max_body_bytes": 4096,
              "redis_health_interval_s": 0.2}  # fmt: skip
    return RankerSettings(**{**values, **overrides})


def _client(redis_server):
    return redis_settings(redis_server.url).client()


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def _closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed `sock` (EOF or reset), or None if it stayed open for `seconds`."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while True:
            if not sock.recv(65536):
                return time.monotonic() - start
    except ConnectionResetError:
        return time.monotonic() - start
    except TimeoutError:
        return None


# ------------------------------------------------------------------ 1. the bundle can make the ranker read files
def _external_data_encoder(dim: int, location: str) -> bytes:
    """An encoder whose output is a tensor stored OUTSIDE the model, at a path relative to the working dir."""
    weight = TensorProto()
    weight.name, weight.data_type = "leak", TensorProto.FLOAT
    weight.dims.extend([1, dim])
    weight.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(dim * 4))):
        entry = weight.external_data.add()
        entry.key, entry.value = k, v
    graph = helper.make_graph(
        [helper.make_node("Identity", ["leak"], ["embedding"])], "leak",
        [helper.make_tensor_value_info("item_ids", TensorProto.INT64, [1, 10])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, dim])], initializer=[weight],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_a_bundle_whose_encoder_reads_local_files_is_refused(redis_server, tmp_path, monkeypatch):
    secret = np.arange(16, dtype=np.float32) + 0.5
    (tmp_path / "host-secret.bin").write_bytes(secret.tobytes())
    monkeypatch.chdir(tmp_path)
    model = _external_data_encoder(16, "host-secret.bin")
    import onnxruntime as ort

    leaked = ort.InferenceSession(model).run(None, {"item_ids": np.zeros((1, 10), np.int64)})[0]
    np.testing.assert_array_equal(leaked[0], secret)  # the threat is real: ORT reads the host's file

    good = tiny_bundle(300)
    hostile = Bundle(model, good.item_ids, good.item_vectors, good.popularity, good.metadata)
    publish_bundle(_client(redis_server), "shop", hostile)
    with hardened_ranker(_settings(redis_server)) as base:
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503 and ready.json()["bundle"] is None
        r = httpx.post(f"{base}/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 409 and "external data" in r.json()["detail"]
        assert httpx.post(f"{base}/recommend", json={"history": ["i1"]}).status_code == 503


def test_signed_bundles_only_when_a_key_is_configured(redis_server):
    client = _client(redis_server)
    publish_bundle(client, "shop", tiny_bundle(300, seed=1))  # unsigned: v1
    with hardened_ranker(_settings(redis_server, bundle_signing_key=SecretStr(KEY.decode()))) as base:
        assert httpx.get(f"{base}/readyz").status_code == 503  # unsigned v1 refused
        publish_bundle(client, "shop", tiny_bundle(300, seed=2), signing_key=b"x" * 32)  # v2: another key
        time.sleep(1.0)
        assert ready_version(base) is None
        reload = httpx.post(f"{base}/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert "signature does not match" in reload["detail"]
        publish_bundle(client, "shop", tiny_bundle(300, seed=3), signing_key=KEY)  # v3: signed with the key
        assert wait_until(lambda: ready_version(base) == "3")

        # an attacker with Redis access rewrites a blob and its xxh3 checksum: the signature catches it
        publish_bundle(client, "shop", tiny_bundle(300, seed=4), signing_key=KEY, chunk_bytes=4096)  # v4
        assert wait_until(lambda: ready_version(base) == "4")
        manifest = read_manifest(client, "shop", "4")
        forged = tiny_bundle(300, seed=5).item_vectors.astype("<f4").tobytes()
        for i in range(manifest["blobs"]["vectors"]["chunks"]):
            client.set(keys.chunk("shop", "4", "vectors", i), forged[i * 4096 : (i + 1) * 4096])
        from semrec.store.bundles import checksum

        manifest["blobs"]["vectors"]["xxh3_64"] = checksum(forged)
        client.set(keys.manifest("shop", "4"), orjson.dumps(manifest))
        r = httpx.post(f"{base}/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 409 and "signature" in r.json()["detail"]
        assert ready_version(base) == "4"  # the good engine keeps serving
    with pytest.raises(Exception, match="SHA-256|signature"):
        load_bundle(client, "shop", "4", signing_key=KEY)
    assert load_bundle(client, "shop", "4").version == "4"  # without a key: xxh3 only (forgery undetected)


# ------------------------------------------------------------------ 2. header / slow-client DoS
@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_slow_idle_and_oversized_clients_are_cut_off(redis_server, parser):
    publish_bundle(_client(redis_server), "shop", tiny_bundle(300))
    settings = _settings(redis_server, header_timeout_s=1.0, body_timeout_s=1.0, keep_alive_s=1.0,
                         max_header_bytes=8192, http_parser=parser)  # fmt: skip
    with hardened_ranker(settings) as base:
        port = _port(base)
        idle = socket.create_connection(("127.0.0.1", port))
        slow_head = socket.create_connection(("127.0.0.1", port))
        slow_head.sendall(b"POST /recommend HTTP/1.1\r\nHost: x\r\n")
        slow_body = socket.create_connection(("127.0.0.1", port))
        slow_body.sendall(b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 100\r\n\r\n{")  # fmt: skip
        for sock in (idle, slow_head, slow_body):
            closed = _closed_within(sock, 5.0)
            assert closed is not None and closed < 4.0, "a silent or dribbling socket stayed open"

        kept = socket.create_connection(("127.0.0.1", port))  # keep-alive after a full request
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in kept.recv(4096)
        assert _closed_within(kept, 4.0) is not None

        bomb = socket.create_connection(("127.0.0.1", port))
        bomb.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n")
        bomb.settimeout(5)
        answer = bomb.recv(4096)
        assert answer.startswith(b"HTTP/1.1 431") and _closed_within(bomb, 3.0) is not None
        trickle = socket.create_connection(("127.0.0.1", port))  # the same in pieces (h11 may answer 400)
        trickle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(20):
                trickle.sendall(b"X-A: " + b"b" * 1000 + b"\r\n")
                time.sleep(0.01)
        except OSError:  # closed by the server while we were still sending: the answer is already queued
            pass
        trickle.settimeout(5)
        assert trickle.recv(4096)[:12] in (b"HTTP/1.1 431", b"HTTP/1.1 400")
        assert httpx.get(f"{base}/healthz").status_code == 200


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_pipelined_and_kept_alive_requests_are_answered_and_the_deadlines_do_not_cut_the_apps_time(redis_server,
                                                                                                    parser):
    publish_bundle(_client(redis_server), "shop", tiny_bundle(300))
    settings = _settings(redis_server, header_timeout_s=0.5, body_timeout_s=0.5, keep_alive_s=3.0,
                         http_parser=parser)  # fmt: skip
    with hardened_ranker(settings) as base:
        assert wait_until(lambda: ready_version(base) == "1")
        body = orjson.dumps({"history": ["i1", "i2"], "k": 3})
        request = (b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
        sock = socket.create_connection(("127.0.0.1", _port(base)))
        sock.settimeout(5)
        sock.sendall(request * 3)  # three requests in one write: answered in order on one connection
        answers = b""
        while answers.count(b"HTTP/1.1 200") < 3:
            chunk = sock.recv(65536)
            assert chunk, f"closed after {answers.count(b'HTTP/1.1 200')} answers"
            answers += chunk
        for _ in range(3):  # kept alive past the head deadline: only keep_alive_s closes an idle connection
            time.sleep(0.8)
            sock.sendall(request)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.sendall(request[:40])  # a head that stops half way is cut at the head deadline
        closed = _closed_within(sock, 3.0)
        assert closed is not None and closed < 2.0


# ------------------------------------------------------------------ 3. POST /events
def test_events_drop_unknown_ids_expire_and_can_require_a_token(redis_server):
    client = _client(redis_server)
    publish_bundle(client, "shop", tiny_bundle(300))
    with hardened_ranker(_settings(redis_server, events_token=SecretStr("ev-token"), history_ttl_s=3600)) as base:
        assert wait_until(lambda: ready_version(base) == "1")
        body = {"user_id": "u1", "items": ["i3", "nope-1", "i7", "nope-2"]}
        assert httpx.post(f"{base}/events", json=body).status_code == 401
        assert httpx.post(f"{base}/events", json=body, headers={"Authorization": "Bearer bad"}).status_code == 403
        r = httpx.post(f"{base}/events", json=body, headers={"Authorization": "Bearer ev-token"})
        assert r.status_code == 200 and r.json() == {"user_id": "u1", "stored": 2, "history_length": 2,
                                                     "unknown_items": ["nope-1", "nope-2"]}  # fmt: skip
        key = keys.user_history("shop", "u1")
        assert [v.decode() for v in client.lrange(key, 0, -1)] == ["i3", "i7"]
        assert 3500 < client.ttl(key) <= 3600
        flood = {"user_id": "u2", "items": [f"junk-{i}" for i in range(20)]}
        assert httpx.post(f"{base}/events", json=flood, headers={"Authorization": "Bearer ev-token"}).json()["stored"] == 0
        assert not client.exists(keys.user_history("shop", "u2"))
        assert "semrec_events_unknown_items_total 22.0" in httpx.get(f"{base}/metrics").text


# ------------------------------------------------------------------ 4. a hung Redis
def test_readiness_and_user_requests_do_not_wait_on_a_hung_redis(redis_server):
    publish_bundle(_client(redis_server), "shop", tiny_bundle(300))
    with hardened_ranker(_settings(redis_server, redis_request_timeout_s=0.3)) as base:
        assert wait_until(lambda: ready_version(base) == "1")
        http = httpx.Client(base_url=base, timeout=20)
        os.kill(redis_server.process.pid, signal.SIGSTOP)
        try:
            timings = []
            for _ in range(10):
                start = time.monotonic()
                user = http.post("/recommend", json={"user_id": "u1"})
                timings.append(time.monotonic() - start)
                assert user.status_code == 503
            assert max(timings) < 1.0, timings  # one socket timeout at most, then fail-fast
            start = time.monotonic()
            ready = http.get("/readyz")
            assert time.monotonic() - start < 0.5 and ready.status_code == 200
            assert wait_until(lambda: http.get("/readyz").json()["status"] == "degraded", timeout=5)
            assert http.post("/recommend", json={"history": ["i1"]}).status_code == 200
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        assert wait_until(lambda: http.post("/recommend", json={"user_id": "u1"}).status_code == 200, timeout=10)
        assert http.get("/readyz").json()["status"] == "ready"


# ------------------------------------------------------------------ 5. version numbers repeat after data loss
def test_a_publish_after_redis_lost_its_data_is_picked_up(redis_server):
    client = _client(redis_server)
    publish_bundle(client, "shop", tiny_bundle(300, seed=1))
    with hardened_ranker(_settings(redis_server)) as base:
        assert wait_until(lambda: ready_version(base) == "1")
        client.flushall()  # a restart without persistence
        assert publish_bundle(client, "shop", tiny_bundle(120, seed=2)).version == "1"  # the same number again
        assert wait_until(lambda: httpx.get(f"{base}/readyz").json()["bundle"]["n_items"] == 120, timeout=10)


# ------------------------------------------------------------------ 6. lone surrogates
@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/recommend", b'{"history": ["i1", "\\ud800"]}'),
        ("/recommend", b'{"history": ["i1"], "exclude": ["\\udfff"]}'),
        ("/recommend", b'{"user_id": "u\\ud83d"}'),
        ("/events", b'{"user_id": "\\ud800", "items": ["i1"]}'),
        ("/events", b'{"user_id": "u1", "items": ["\\ud800x"]}'),
        ("/recommend", b'{"history": ["i1"], "\\ud800": 1}'),
    ],
)
def test_ids_that_are_not_unicode_text_get_422(redis_server, path, raw):
    publish_bundle(_client(redis_server), "shop", tiny_bundle(300))
    with hardened_ranker(_settings(redis_server)) as base:
        assert wait_until(lambda: ready_version(base) == "1")
        with httpx.Client(base_url=base) as http:
            r = http.post(path, content=raw, headers={"content-type": "application/json"})
            assert r.status_code == 422, r.text
            assert http.get("/healthz").status_code == 200  # same connection: not closed by a 500


# ------------------------------------------------------------------ 7. a bad pointer at start-up
def test_start_up_falls_back_to_the_newest_version_that_verifies(redis_server, caplog):
    client = _client(redis_server)
    publish_bundle(client, "shop", tiny_bundle(300, seed=1))
    publish_bundle(client, "shop", tiny_bundle(310, seed=2))
    publish_bundle(client, "shop", tiny_bundle(320, seed=3), chunk_bytes=4096)
    client.setrange(keys.chunk("shop", "3", "vectors", 0), 0, b"rot")  # the current version is corrupt
    with caplog.at_level(logging.WARNING, "semrec.ranker"), hardened_ranker(_settings(redis_server)) as base:
        ready = httpx.get(f"{base}/readyz").json()
        assert ready["status"] == "ready" and ready["bundle"]["version"] == "2"
        assert "v3" in ready["notice"] and "v2" in ready["notice"]
        assert any("serving v2" in r.getMessage() for r in caplog.records)
        publish_bundle(client, "shop", tiny_bundle(330, seed=4))  # the pointer moves: back to normal
        assert wait_until(lambda: ready_version(base) == "4")
        assert httpx.get(f"{base}/readyz").json()["notice"] is None


# ------------------------------------------------------------------ 8. 413 before the body is read
def test_an_oversized_body_sent_in_full_still_reads_the_413(redis_server):
    """A client that writes its whole body before reading (as over a network: in pieces, over time) must
    get the 413, not a reset from a server that closed after the headers."""
    publish_bundle(_client(redis_server), "shop", tiny_bundle(300))
    with hardened_ranker(_settings(redis_server, max_discard_bytes=1 << 20)) as base:
        body = b'{"history": [' + b'"i1",' * 100_000 + b'"i1"]}'  # ~500 KB, limit 4 KiB
        sock = socket.create_connection(("127.0.0.1", _port(base)))
        sock.sendall(b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))  # fmt: skip
        for start in range(0, len(body), 32768):
            sock.sendall(body[start : start + 32768])
            time.sleep(0.01)
        sock.settimeout(5)
        assert sock.recv(4096).startswith(b"HTTP/1.1 413")


# ------------------------------------------------------------------ 9. a password in the URL's query
def test_a_password_in_the_url_query_never_reaches_the_log(tmp_path, caplog):
    server = RedisServer(tmp_path, password="query-pw-123")
    try:
        url = f"redis://127.0.0.1:{server.port}/0?password=query-pw-123"
        publish_bundle(redis_settings(url).client(), "shop", tiny_bundle(100))
        settings = RankerSettings(redis_url=SecretStr(url), catalog="shop")
        with caplog.at_level(logging.INFO, "semrec.ranker"), hardened_ranker(settings) as base:
            assert ready_version(base) == "1"
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert "password=***" in text and "query-pw-123" not in text
    finally:
        server.stop()


# ------------------------------------------------------------------ 10. a malformed announcement
def test_a_malformed_announcement_does_not_drop_the_subscription(redis_server):
    client = _client(redis_server)
    publish_bundle(client, "shop", tiny_bundle(300, seed=1))
    with hardened_ranker(_settings(redis_server, poll_interval_s=30)) as base:  # only pub/sub is fast
        assert ready_version(base) == "1"
        time.sleep(0.5)  # subscribed
        for junk in (b"\xff not json", b"[1, 2]", b'{"version": {"x": 1}}'):
            client.publish(keys.updates_channel("shop"), junk)
        time.sleep(0.3)
        publish_bundle(client, "shop", tiny_bundle(300, seed=2))
        assert wait_until(lambda: ready_version(base) == "2", timeout=5)


# ------------------------------------------------------------------ 11. admin without a token, public docs
def test_admin_enabled_without_a_token_refuses_to_start_and_docs_can_be_closed(redis_server):
    env = {**os.environ, "SEMREC_REDIS_URL": redis_server.url, "SEMREC_ADMIN_ENABLED": "true"}
    env.pop("SEMREC_ADMIN_TOKEN", None)
    cmd = [sys.executable, "-m", "semrec.cli", "serve", "--port", str(free_port())]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "SEMREC_ADMIN_TOKEN" in result.stderr + result.stdout
    with hardened_ranker(_settings(redis_server, docs_enabled=False, admin_enabled=False)) as base:
        for path in ("/docs", "/openapi.json", "/redoc"):
            assert httpx.get(f"{base}{path}").status_code == 404
        r = httpx.post(f"{base}/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 403  # a token is set, but admin is switched off


def test_connections_beyond_the_concurrency_limit_get_503_not_a_hang(redis_server):
    publish_bundle(_client(redis_server), "shop", tiny_bundle(300))
    with hardened_ranker(_settings(redis_server, limit_concurrency=20, header_timeout_s=30)) as base:
        hogs = [socket.create_connection(("127.0.0.1", _port(base))) for _ in range(25)]
        time.sleep(0.3)
        start = time.monotonic()
        r = httpx.get(f"{base}/healthz", timeout=5)
        assert r.status_code == 503 and time.monotonic() - start < 2.0
        for sock in hogs:
            sock.close()
        assert wait_until(lambda: httpx.get(f"{base}/healthz", timeout=5).status_code == 200, timeout=5)
