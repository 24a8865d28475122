"""Micro-batching, the int8 exact top-k and shared arrays on the real request path: real uvicorn (the
`semrec serve` protocol), real redis-server, real ONNX Runtime; concurrent clients over loopback."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import numpy as np
import pytest
from hardening_helpers import hardened_ranker
from pydantic import SecretStr
from semrec.settings import redis_settings
from semrec.store import publish_bundle, write_histories
from semrec_ranker.core.config import RankerSettings
from serving_helpers import ready_version, wait_until

N_ITEMS = 4000


@pytest.fixture(scope="module")
def bundle():
    from semrec_ranker.bench.synthetic import synthetic_bundle

    return synthetic_bundle(N_ITEMS, dim=32, max_len=10, backbone="sasrec", seed=4)


def _settings(redis_server, **overrides) -> RankerSettings:
    values = {"redis_url": SecretStr(redis_server.url), "catalog": "shop", "poll_interval_s": 0.3,
              "redis_health_interval_s": 0.2, "int8_min_items": 0, "rescore_candidates": 32}  # fmt: skip
    return RankerSettings(**{**values, **overrides})


def _bodies(count: int) -> list[dict]:
    rng = np.random.default_rng(7)
    bodies = []
    for n in range(count):
        if n % 4 == 3:
            bodies.append({"user_id": f"u{n}", "k": 10})
        else:
            history = [f"i{j}" for j in rng.integers(1, N_ITEMS + 1, int(rng.integers(1, 12)))]
            bodies.append({"history": history, "k": int(rng.integers(1, 20)), "exclude": [f"i{n + 1}"]})
    return bodies


async def _concurrently(base: str, bodies: list[dict], rounds: int = 3) -> list[dict]:
    """Every body sent at once from its own connection, `rounds` times; the last round's answers."""
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        for _ in range(rounds):
            replies = await asyncio.gather(*(http.post("/recommend", json=b) for b in bodies))
            assert all(r.status_code == 200 for r in replies), [r.text for r in replies if r.status_code != 200]
    return [r.json() for r in replies]


def _batch_counts(base: str) -> tuple[float, float]:
    text = httpx.get(f"{base}/metrics").text
    count = float(re.search(r"^semrec_batch_size_count (\S+)$", text, re.M).group(1))
    total = float(re.search(r"^semrec_batch_size_sum (\S+)$", text, re.M).group(1))
    return count, total


def test_batched_answers_equal_unbatched_ones_under_concurrent_load(redis_server, bundle, tmp_path):
    client = redis_settings(redis_server.url).client()
    publish_bundle(client, "shop", bundle)
    bodies = _bodies(48)
    write_histories(client, "shop", ((b["user_id"], [f"i{i}" for i in range(3, 12)]) for b in bodies if "user_id" in b),
                    cap=50, ttl_s=600)  # fmt: skip
    answers = {}
    for name, overrides in {
        "off, float32 scan": {"batch_window_ms": 0, "exact_kernel": "float32"},
        # a fixed window long enough that requests sharing a call does not depend on how busy the machine is
        # (48 requests from one client can take tens of ms to leave it); batch_max closes each window early
        "on, int8 + rescoring, shared arrays": {"batch_window_ms": 250, "batch_max": 16, "shared_dir": tmp_path,
                                                "batch_adaptive": False},
        "on, adaptive, compute thread": {"batch_window_ms": 5, "batch_on_thread": True},
    }.items():
        with hardened_ranker(_settings(redis_server, **overrides)) as base:
            assert wait_until(lambda: ready_version(base) == "1")
            answers[name] = asyncio.run(_concurrently(base, bodies))
            index = httpx.get(f"{base}/readyz").json()["bundle"]["index"]
            if overrides["batch_window_ms"]:
                assert index == "exact-int8"
                count, total = _batch_counts(base)
                assert total == 3 * len(bodies), (count, total)
                if overrides.get("batch_adaptive") is False:
                    assert total / count > 2, (count, total)  # requests did share calls
                    assert any(p.is_dir() for p in tmp_path.iterdir())  # the arrays were written for the workers
            else:
                assert index == "exact"
    off, *batched = answers.values()
    for body, a, b in ((body, a, b) for on in batched for body, a, b in zip(bodies, off, on, strict=True)):
        assert [i["item_id"] for i in a["items"]] == [i["item_id"] for i in b["items"]], body
        np.testing.assert_allclose([i["score"] for i in a["items"]], [i["score"] for i in b["items"]], atol=1e-5)
        assert a["history_used"] == b["history_used"] and a["fallback"] == b["fallback"]


def test_an_adaptive_window_does_not_delay_a_lone_request(redis_server, bundle):
    publish_bundle(redis_settings(redis_server.url).client(), "shop", bundle)
    window_s = 1.0
    with hardened_ranker(_settings(redis_server, batch_window_ms=window_s * 1000)) as base:  # adaptive: default
        assert wait_until(lambda: ready_version(base) == "1")
        with httpx.Client(base_url=base, timeout=30) as http:
            http.post("/recommend", json={"history": ["i1"]})
            for n in range(3):
                start = time.perf_counter()
                assert http.post("/recommend", json={"history": [f"i{n + 2}"]}).status_code == 200
                assert time.perf_counter() - start < window_s / 2


def test_a_lone_request_waits_at_most_the_window_and_a_full_batch_does_not_wait(redis_server, bundle):
    publish_bundle(redis_settings(redis_server.url).client(), "shop", bundle)
    window_s = 1.0
    with hardened_ranker(_settings(redis_server, batch_window_ms=window_s * 1000, batch_max=4,
                                   batch_adaptive=False)) as base:  # fmt: skip
        assert wait_until(lambda: ready_version(base) == "1")
        with httpx.Client(base_url=base, timeout=30) as http:
            http.post("/recommend", json={"history": ["i1"]})  # connection and code paths warm
            lone = []
            for n in range(3):
                start = time.perf_counter()
                assert http.post("/recommend", json={"history": [f"i{n + 2}"]}).status_code == 200
                lone.append(time.perf_counter() - start)
        # nobody joins: each waits the window (it is a wait, not a floor of 0) and not much more
        assert all(window_s * 0.9 <= t < window_s + 0.6 for t in lone), lone

        async def four_at_once() -> float:
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                await http.get("/healthz")
                start = time.perf_counter()
                replies = await asyncio.gather(*(http.post("/recommend", json={"history": [f"i{n}"]})
                                                 for n in range(10, 14)))  # fmt: skip
                assert all(r.status_code == 200 for r in replies)
                return time.perf_counter() - start

        # batch_max requests close the window early: they need not wait for it
        assert min(asyncio.run(four_at_once()) for _ in range(3)) < window_s * 0.6
