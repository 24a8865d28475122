"""The ranker over real HTTP (uvicorn on loopback), real redis-server and real ONNX Runtime."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import numpy as np
import pytest
from conftest import free_port
from pydantic import SecretStr
from semrec.settings import redis_settings
from semrec.store import keys, publish_bundle
from semrec_ranker.core.config import RankerSettings
from semrec_ranker.engine import BundleHolder, Engine, Reloader
from serving_helpers import ready_version, running_ranker, tiny_bundle, wait_until

TOKEN = "t0ken-for-tests"


def _settings(redis_server, **overrides) -> RankerSettings:
    values = {"redis_url": SecretStr(redis_server.url), "catalog": "shop", "poll_interval_s": 0.3,
              "admin_token": SecretStr(TOKEN), "history_cap": 20, "max_body_bytes": 4096}  # fmt: skip
    return RankerSettings(**{**values, **overrides})


@pytest.fixture
def published(redis_server):
    client = redis_settings(redis_server.url).client()
    bundle = tiny_bundle(300)
    publish_bundle(client, "shop", bundle)
    return client, bundle


def test_semrec_serve_starts_without_a_bundle_and_picks_up_the_first_publish(redis_server):
    """The deploy contract: `semrec serve --host --port`, settings from SEMREC_* variables."""
    env = {**os.environ, "SEMREC_REDIS_URL": redis_server.url, "SEMREC_CATALOG": "shop",
           "SEMREC_POLL_INTERVAL_S": "0.5", "SEMREC_ADMIN_TOKEN": TOKEN, "SEMREC_HISTORY_CAP": "20",
           "SEMREC_ORT_THREADS": "1", "SEMREC_ANN_THRESHOLD": "100000"}  # fmt: skip
    for _attempt in range(3):  # a free port can be taken before the child binds it: retry on a new one
        port = free_port()
        cmd = [sys.executable, "-m", "semrec.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        up = wait_until(lambda b=base, p=process: _answers(b) or p.poll() is not None, timeout=120)
        if up and process.poll() is None:
            break
        process.kill()
        process.communicate(timeout=20)
    try:
        assert _answers(base), "semrec serve did not come up"
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        r = httpx.get(f"{base}/readyz")
        assert r.status_code == 503 and r.json()["status"] == "not_ready"
        assert httpx.post(f"{base}/recommend", json={"history": ["i1"]}).status_code == 503
        publish_bundle(redis_settings(redis_server.url).client(), "shop", tiny_bundle(300))
        assert wait_until(lambda: ready_version(base) == "1")
        metrics = httpx.get(f"{base}/metrics").text
        assert 'semrec_bundle_info{catalog="shop",index="exact",version="1"} 1.0' in metrics and 'semrec_reloads_total{outcome="loaded"}' in metrics
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0].decode()
    assert TOKEN not in output and "no bundle at start-up" in output


def torch_query(bundle, encoder_ids: list[int]) -> np.ndarray:
    """The query vector of `tiny_bundle`'s "mean" encoder, rebuilt in torch from its seed (not ONNX Runtime)."""
    import torch
    from semrec_ranker.bench.synthetic import build_encoder_module

    module = build_encoder_module("mean", len(bundle.item_ids), bundle.dim, bundle.max_len, seed=0)
    ids = torch.zeros(1, bundle.max_len, dtype=torch.long)
    ids[0, -len(encoder_ids) :] = torch.tensor(encoder_ids)
    with torch.no_grad():
        return module(ids)[0].numpy()


def assert_top_k(scores: np.ndarray, rows: list[int], atol: float = 1e-5) -> None:
    """`rows` hold the len(rows) best `scores`, best first; near-ties may come in either order."""
    got = scores[rows]
    best = np.sort(scores)[::-1][: len(rows)]
    np.testing.assert_allclose(got, best, atol=atol)


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_recommend_similar_events_and_validation(redis_server, published):
    client, bundle = published
    with running_ranker(_settings(redis_server)) as (base, _):
        assert wait_until(lambda: ready_version(base) == "1")
        http = httpx.Client(base_url=base, timeout=10)

        r = http.post("/recommend", json={"history": ["i3", "i7", "nope"], "k": 5})
        body = r.json()
        assert r.status_code == 200 and len(body["items"]) == 5
        assert body["version"] == "1" and body["unknown_items"] == ["nope"] and body["fallback"] is False
        returned = [i["item_id"] for i in body["items"]]
        assert not {"i3", "i7"} & set(returned)
        scores = [i["score"] for i in body["items"]]
        assert scores == sorted(scores, reverse=True)
        # the same answer computed independently: the bundle's encoder rebuilt in torch (same seed: the
        # "mean" encoder pools the embeddings of items 3 and 7), then a numpy cosine top-k without the history
        query = torch_query(bundle, [3, 7])
        cosine = (bundle.item_vectors @ query).astype(np.float64)
        cosine[[2, 6]] = -np.inf
        assert_top_k(cosine, [bundle.item_ids.index(i) for i in returned])

        excluded = http.post("/recommend", json={"history": ["i3"], "k": 3, "exclude": [returned[0]]}).json()
        assert returned[0] not in [i["item_id"] for i in excluded["items"]]
        kept = http.post("/recommend", json={"history": ["i3", "i7"], "k": 200, "exclude_seen": False}).json()
        assert_top_k((bundle.item_vectors @ query).astype(np.float64),
                     [bundle.item_ids.index(i["item_id"]) for i in kept["items"]])  # fmt: skip
        assert len(kept["items"]) == 200

        cold = http.post("/recommend", json={"history": ["unknown-1"], "k": 4}).json()
        top_popular = [bundle.item_ids[r] for r in np.argsort(-bundle.popularity, kind="stable")[:4]]
        assert cold["fallback"] is True and [i["item_id"] for i in cold["items"]] == top_popular

        assert http.post("/events", json={"user_id": "u1", "items": ["i3", "i7"]}).json()["history_length"] == 2
        by_user = http.post("/recommend", json={"user_id": "u1", "k": 5}).json()
        assert [i["item_id"] for i in by_user["items"]] == returned and by_user["history_used"] == 2
        for _ in range(3):
            http.post("/events", json={"user_id": "u1", "items": [f"i{j}" for j in range(10, 20)]})
        assert client.llen(keys.user_history("shop", "u1")) == 20  # capped at SEMREC_HISTORY_CAP

        similar = http.get("/items/i3/similar", params={"k": 4}).json()
        assert len(similar["items"]) == 4 and "i3" not in [i["item_id"] for i in similar["items"]]
        assert http.get("/items/missing/similar").status_code == 404

        bad = [
            {"history": ["i1"], "k": 0}, {"history": ["i1"], "k": 201}, {"history": "i1"}, {"k": 3},
            {"history": ["i1"], "user_id": "u1"}, {"history": [f"i{j}" for j in range(21)]},
            {"history": ["i1"], "surprise": 1}, {"history": [{"id": 1}]},
        ]  # fmt: skip
        for payload in bad:
            r = http.post("/recommend", json=payload)
            assert r.status_code == 422, (payload, r.text)
            assert r.json()["detail"]
        assert http.post("/recommend", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
        assert http.post("/recommend", json={"history": ["i1"] * 2000}).status_code == 413
        assert http.post("/events", json={"user_id": "u", "items": []}).status_code == 422
        assert http.get("/items/i3/similar", params={"k": 500}).status_code == 422

        assert http.post("/admin/reload").status_code == 401
        assert http.post("/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 403
        r = http.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and r.json()["status"] == "loaded"

        metrics = http.get("/metrics").text
        assert 'semrec_http_request_duration_seconds_count{method="POST",route="/recommend",status="200"}' in metrics
        assert 'semrec_http_request_duration_seconds_count{method="GET",route="/items/{item_id}/similar",status="404"}' in metrics
        assert 'semrec_model_seconds_count{stage="encode"}' in metrics
        assert "semrec_popularity_fallback_total 1.0" in metrics
        rss = [line for line in metrics.splitlines() if line.startswith("process_resident_memory_bytes ")]
        assert rss and float(rss[0].split()[1]) > 10e6  # the process memory is exported (a real, loaded process)


def test_hot_reload_on_publish_and_redis_down(redis_server, published):
    client, _ = published
    with running_ranker(_settings(redis_server)) as (base, _):
        assert wait_until(lambda: ready_version(base) == "1")
        publish_bundle(client, "shop", tiny_bundle(400, seed=5))
        assert wait_until(lambda: ready_version(base) == "2")
        assert httpx.get(f"{base}/readyz").json()["bundle"]["n_items"] == 400

        redis_server.stop()
        # readiness comes from the background Redis check (SEMREC_REDIS_HEALTH_INTERVAL_S), never a live ping
        assert wait_until(lambda: httpx.get(f"{base}/readyz").json()["redis"] == "unreachable", timeout=5)
        ready = httpx.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert ready.json()["redis"] == "unreachable"
        by_history = httpx.post(f"{base}/recommend", json={"history": ["i1"]}, timeout=10)
        assert by_history.status_code == 200 and by_history.json()["version"] == "2"
        by_user = httpx.post(f"{base}/recommend", json={"user_id": "u1"}, timeout=10)
        assert by_user.status_code == 503 and "Redis unreachable" in by_user.json()["detail"]
        assert httpx.post(f"{base}/events", json={"user_id": "u1", "items": ["i1"]}, timeout=10).status_code == 503


def test_reload_refuses_a_corrupted_version_and_keeps_serving(redis_server, published):
    client, _ = published
    holder = BundleHolder()
    outcomes = []
    reloader = Reloader(client, "shop", holder, lambda v, b: Engine(v, b), 1.0, outcomes.append)
    assert reloader.reload().status == "loaded"
    old_engine = holder.engine

    publish_bundle(client, "shop", tiny_bundle(300, seed=7), chunk_bytes=4096)
    client.setrange(keys.chunk("shop", "2", "vectors", 1), 0, b"corrupt")
    outcome = reloader.reload()
    assert outcome.status == "failed" and "checksum" in outcome.detail
    assert holder.engine is old_engine and holder.version == "1"
    assert reloader.reload().status == "unchanged"  # the refused version is not retried in a loop

    publish_bundle(client, "shop", tiny_bundle(300, seed=8))
    assert reloader.reload().status == "loaded" and holder.version == "3"
    # a request that took the old engine before the swap still completes on it
    assert old_engine.recommend(["i1"], 3).rows.size == 3
