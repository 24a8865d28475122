"""The engine's top-k against a brute-force reference (blocked exact search, exclusions, HNSW restore)."""

from __future__ import annotations

import numpy as np
import pytest
from semrec.store.ann import build_hnsw
from semrec_ranker.bench.synthetic import random_unit_vectors
from semrec_ranker.engine.index import ExactIndex, HnswIndex


@pytest.mark.parametrize("block_rows", [7, 1000, 65_536])
def test_blocked_exact_top_k_matches_a_full_sort(block_rows, rng):
    vectors = rng.standard_normal((3001, 16)).astype(np.float32)
    index = ExactIndex(vectors, block_rows)
    for _ in range(20):
        query = rng.standard_normal(16).astype(np.float32)
        k = int(rng.integers(1, 60))
        excluded = np.unique(rng.integers(0, 3001, int(rng.integers(0, 40))))
        scores = vectors @ query
        scores[excluded] = -np.inf
        expected = np.argsort(-scores, kind="stable")[:k]
        rows, got = index.search(query, k, excluded)
        np.testing.assert_array_equal(np.sort(rows), np.sort(expected))
        assert np.all(np.diff(got) <= 0) and not np.isin(rows, excluded).any()
    rows, _ = ExactIndex(vectors[:5], 2).search(vectors[0], 10, np.array([1, 3]))
    assert sorted(rows.tolist()) == [0, 2, 4]  # fewer valid rows than k: only the valid ones


def test_hnsw_index_round_trips_and_respects_exclusions():
    vectors = random_unit_vectors(2000, 32, seed=1)
    index = HnswIndex(build_hnsw(vectors), 32, expansion=128, fallback=ExactIndex(vectors))
    rows, scores = index.search(vectors[5], 10, np.empty(0, np.int64))
    assert rows[0] == 5 and scores[0] == pytest.approx(1.0, abs=1e-2)
    rows, _ = index.search(vectors[5], 10, np.array([5]))
    assert 5 not in rows and len(rows) == 10
    rows, _ = index.search(vectors[5], 10, np.arange(0, 1990))  # too many exclusions: exact fallback
    assert sorted(rows.tolist()) == list(range(1990, 2000))
