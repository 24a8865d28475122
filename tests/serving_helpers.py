"""Helpers for the store/ranker tests: tiny bundles with real ONNX encoders, a ranker on a real port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import httpx
from semrec.bundle import Bundle


@lru_cache(maxsize=8)
def _cached_bundle(n_items: int, seed: int, dim: int) -> Bundle:
    from semrec_ranker.bench.synthetic import synthetic_bundle

    return synthetic_bundle(n_items, dim=dim, max_len=10, backbone="mean", seed=seed)


def tiny_bundle(n_items: int = 300, seed: int = 0, dim: int = 16) -> Bundle:
    """A fresh copy (callers may mutate metadata) of a cached tiny bundle."""
    b = _cached_bundle(n_items, seed, dim)
    return Bundle(b.encoder_onnx, list(b.item_ids), b.item_vectors.copy(), b.popularity.copy(), dict(b.metadata))


@contextmanager
def running_ranker(settings, encoder_factory=None) -> Iterator[tuple[str, object]]:
    """The ranker app under a real uvicorn on a free loopback port (in a thread); yields (base_url, app)."""
    import uvicorn
    from semrec_ranker.main import create_app

    app = create_app(settings, encoder_factory)
    # port 0: the kernel picks a free port at bind time and we read back what was bound (no pick-then-bind race)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 120  # generous: the CI machine is shared
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("ranker did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.1) -> bool:
    """Poll `predicate` until it holds; the deadline is generous (a busy 2-core machine), the wait is not."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def ready_version(base: str) -> str | None:
    r = httpx.get(f"{base}/readyz", timeout=5)
    return r.json()["bundle"]["version"] if r.status_code == 200 else None
