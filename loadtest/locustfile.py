"""Locust load test of the semrec ranker: a realistic mix of the four request kinds.

Self-contained (locust + the standard library only) so the same file runs from `semrec bench load`, from
the `locustio/locust` image (docker compose profile `load`) and from a plain `locust -f` command line.

Traffic mix (weights, override with SEMREC_LOADTEST_MIX="user=45,history=20,events=25,similar=10"):
- `POST /recommend` by `user_id`: the ranker reads the user's history from Redis;
- `POST /recommend` by `history`: the client sends 1..20 item ids (1 request in 20 carries an id the
  catalogue does not know, as a client with a stale item list would);
- `POST /events`: the user clicks an item, usually one the last recommendation showed;
- `GET /items/{id}/similar`: item-to-item.
Each Locust user is one shopper with its own `user_id` (prefix `loadtest-`) whose history starts with a
few events, so `/recommend` by user id reads a real history.

Item ids come from the published catalogue through the ranker's own API: before the users start, one
`/recommend` with an empty history (the popularity fallback, most popular first) and then `/similar`
from those items, breadth first, until SEMREC_LOADTEST_POOL ids (default 2000) are known. The load test
therefore needs nothing but the ranker's URL (no Redis access: it works against a Kubernetes Service),
and items are drawn with a popularity skew, as real traffic is. SEMREC_LOADTEST_ITEMS=FILE (one id per
line) uses a given list instead.

Environment: SEMREC_LOADTEST_USER_RPS (requests per second per user, default 10; 0 = as fast as
possible), SEMREC_LOADTEST_K (default 10), SEMREC_LOADTEST_SAMPLES=FILE.csv (every request's start time,
name, latency in ms and success, written at the end, for exact percentiles).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import deque

from locust import FastHttpUser, constant, constant_throughput, events, task

log = logging.getLogger("semrec.loadtest")

DEFAULT_MIX = {"user": 45, "history": 20, "events": 25, "similar": 10}
UNKNOWN_ITEM = "loadtest-unknown-item"
K = int(os.environ.get("SEMREC_LOADTEST_K", "10"))
USER_RPS = float(os.environ.get("SEMREC_LOADTEST_USER_RPS", "10"))
POOL_SIZE = int(os.environ.get("SEMREC_LOADTEST_POOL", "2000"))

CATALOGUE: list[str] = []  # item ids, most popular first
SAMPLES: list[tuple[float, str, float, bool]] = []


def parse_mix(text: str | None) -> dict[str, int]:
    mix = dict(DEFAULT_MIX)
    for part in (text or "").split(","):
        if part.strip():
            name, _, weight = part.partition("=")
            if name.strip() not in DEFAULT_MIX:
                raise ValueError(f"SEMREC_LOADTEST_MIX: unknown request kind {name!r} (known: {sorted(DEFAULT_MIX)})")
            mix[name.strip()] = int(weight)
    return mix


MIX = parse_mix(os.environ.get("SEMREC_LOADTEST_MIX"))


# The request bodies, in one place: they follow the ranker's pydantic models (issue 8).
def recommend_by_user(user_id: str) -> dict:
    return {"user_id": user_id, "k": K}


def recommend_by_history(history: list[str]) -> dict:
    return {"history": history, "k": K}


def events_body(user_id: str, item_ids: list[str]) -> dict:
    return {"user_id": user_id, "items": item_ids}


def item_ids_in(payload: dict) -> list[str]:
    """The recommended item ids of a /recommend or /similar response (`items`: dicts with `item_id`)."""
    ids = []
    for entry in payload.get("items", []):
        ids.append(str(entry["item_id"] if isinstance(entry, dict) else entry))
    return ids


def _get_json(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def discover_catalogue(host: str, size: int) -> list[str]:
    """Item ids from the published catalogue, via the popularity fallback and then /similar (breadth first)."""
    host = host.rstrip("/")
    seeds = item_ids_in(_get_json(f"{host}/recommend", {"history": [], "k": 200, "exclude_seen": False}))
    known = dict.fromkeys(seeds)
    frontier = deque(seeds)
    for _ in range(50):
        if len(known) >= size or not frontier:
            break
        item = urllib.parse.quote(frontier.popleft(), safe="")
        try:
            similar = item_ids_in(_get_json(f"{host}/items/{item}/similar?k=100"))
        except (OSError, urllib.error.URLError, ValueError) as exc:
            log.warning("catalogue discovery: /items/%s/similar failed (%s); using %d ids", item, exc, len(known))
            break
        for found in similar:
            if found not in known:
                known[found] = None
                frontier.append(found)
    return list(known)[:size]


@events.test_start.add_listener
def load_catalogue(environment, **_kwargs) -> None:
    items_file = os.environ.get("SEMREC_LOADTEST_ITEMS")
    try:
        if items_file:
            with open(items_file, encoding="utf-8") as fh:
                CATALOGUE[:] = [line.strip() for line in fh if line.strip()]
        else:
            CATALOGUE[:] = discover_catalogue(environment.host, POOL_SIZE)
    except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
        log.error("cannot read the catalogue from %s: %s", items_file or environment.host, exc)
    if not CATALOGUE:
        log.error("no item ids: is a bundle loaded (GET /readyz)? stopping")
        if environment.runner is not None:
            environment.runner.quit()
        return
    log.info("catalogue: %d item ids", len(CATALOGUE))


@events.request.add_listener
def record_sample(request_type, name, response_time, exception, start_time=None, **_kwargs) -> None:
    SAMPLES.append((start_time or time.time(), name, float(response_time), exception is None))


@events.quitting.add_listener
def write_samples(environment, **_kwargs) -> None:
    path = os.environ.get("SEMREC_LOADTEST_SAMPLES")
    if not path:
        return
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["start_time", "name", "response_ms", "ok"])
        for start, name, ms, ok in SAMPLES:
            writer.writerow([f"{start:.6f}", name, f"{ms:.4f}", int(ok)])


def popular_item() -> str:
    """An item id with a popularity skew (the catalogue is ordered most popular first)."""
    return CATALOGUE[int(len(CATALOGUE) * random.random() ** 3)]


class Shopper(FastHttpUser):
    """One user browsing: reads recommendations, clicks, looks at similar items."""

    wait_time = constant_throughput(USER_RPS) if USER_RPS > 0 else constant(0)

    def on_start(self) -> None:
        self.user_id = f"loadtest-{uuid.uuid4().hex[:12]}"
        self.last_shown: list[str] = []
        if CATALOGUE:
            self._post("/events", events_body(self.user_id, [popular_item() for _ in range(5)]), "/events")

    def _post(self, path: str, body: dict, name: str) -> list[str]:
        with self.client.post(path, json=body, name=name, catch_response=True) as response:
            return self._check(response)

    @staticmethod
    def _check(response) -> list[str]:
        if not 200 <= response.status_code < 300:
            response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
            return []
        try:
            return item_ids_in(response.json()) if response.text else []
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            response.failure(f"unexpected body: {exc}")
            return []

    @task(MIX["user"])
    def recommend_for_user(self) -> None:
        self.last_shown = self._post("/recommend", recommend_by_user(self.user_id), "/recommend [user_id]")

    @task(MIX["history"])
    def recommend_for_history(self) -> None:
        history = [popular_item() for _ in range(random.randint(1, 20))]
        if random.random() < 0.05:
            history.append(UNKNOWN_ITEM)
        self._post("/recommend", recommend_by_history(history), "/recommend [history]")

    @task(MIX["events"])
    def click(self) -> None:
        clicked = random.choice(self.last_shown) if self.last_shown and random.random() < 0.7 else popular_item()
        self._post("/events", events_body(self.user_id, [clicked]), "/events")

    @task(MIX["similar"])
    def similar_items(self) -> None:
        item = urllib.parse.quote(popular_item(), safe="")
        with self.client.get(f"/items/{item}/similar?k={K}", name="/items/{id}/similar", catch_response=True) as r:
            self._check(r)
