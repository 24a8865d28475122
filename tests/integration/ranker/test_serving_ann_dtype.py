"""`semrec publish --ann-dtype i8` (the real CLI, a real redis-server) builds an i8 HNSW index that the ranker
serves over HTTP with float32 scores, finding the exact top-10."""

from __future__ import annotations

import subprocess
import sys

import httpx
import numpy as np
import pytest
from pydantic import SecretStr
from semrec.settings import redis_settings
from semrec.store import load_bundle
from semrec_ranker.core.config import RankerSettings
from semrec_ranker.engine import Engine
from serving_helpers import ready_version, running_ranker, tiny_bundle, wait_until


def test_an_i8_index_published_by_the_cli_is_served_with_the_exact_top_10(redis_server, tmp_path):
    bundle = tiny_bundle(3000, seed=4)
    bundle.save(tmp_path / "run" / "bundle")
    cmd = [sys.executable, "-m", "semrec.cli", "publish", "--run", str(tmp_path / "run"), "--redis",
           redis_server.url, "--catalog", "shop", "--ann-threshold", "0", "--ann-dtype", "i8"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "building the HNSW index (i8)" in result.stdout + result.stderr
    published = load_bundle(redis_settings(redis_server.url).client(), "shop").bundle
    assert published.metadata["ann"]["dtype"] == "i8" and published.ann_index is not None

    exact = Engine("exact", published, ann_threshold=10**9)
    rng = np.random.default_rng(0)
    histories = [[bundle.item_ids[j] for j in rng.integers(0, 3000, 6)] for _ in range(30)]
    settings = RankerSettings(redis_url=SecretStr(redis_server.url), catalog="shop", ann_threshold=0,
                              ann_expansion=64, ann_rescore=32, poll_interval_s=3600.0)  # fmt: skip
    with running_ranker(settings) as (base, _):
        assert wait_until(lambda: ready_version(base) == "1"), "the ranker did not load the bundle"
        described = httpx.get(f"{base}/readyz", timeout=10).json()["bundle"]
        assert (described["index"], described["ann_dtype"]) == ("hnsw", "i8")
        hits = []
        with httpx.Client(base_url=base, timeout=30) as http:
            for history in histories:
                answer = http.post("/recommend", json={"history": history, "k": 10}).json()
                served = {item["item_id"]: item["score"] for item in answer["items"]}
                expected = exact.recommend(history, 10)
                expected_ids = {bundle.item_ids[row] for row in expected.rows}
                query_scores = dict(zip((bundle.item_ids[r] for r in expected.rows), expected.scores, strict=True))
                for item in set(served) & expected_ids:  # float32 scores, as the exact path gives them
                    assert served[item] == pytest.approx(float(query_scores[item]), abs=1e-5)
                hits.append(len(set(served) & expected_ids) / 10)
    assert np.mean(hits) >= 0.95
