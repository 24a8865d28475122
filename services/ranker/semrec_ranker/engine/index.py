"""Top-k over the normalised item matrix: exact (matrix product + argpartition) or an HNSW index (usearch)."""

from __future__ import annotations

import numpy as np


class ExactIndex:
    """Cosine top-k by one matrix-vector product; the only item-sized allocation per query is the scores."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors

    def search(self, query: np.ndarray, k: int, excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = self.vectors @ query
        if excluded.size:
            scores[excluded] = -np.inf
        n_valid = scores.shape[0] - excluded.size
        k = min(k, max(n_valid, 0))
        if k == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        top = np.argpartition(scores, -k)[-k:] if k < scores.shape[0] else np.arange(scores.shape[0])
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[np.isfinite(scores[top])][:k]
        return top, scores[top]


class HnswIndex:
    """A usearch HNSW index (inner product on unit vectors = cosine) published inside the bundle."""

    def __init__(self, blob: bytes, dim: int, expansion: int, fallback: ExactIndex) -> None:
        from usearch.index import Index

        self.index = Index.restore(bytearray(blob), view=False)
        if self.index is None or self.index.ndim != dim:
            raise ValueError("ANN index does not match the item vectors")
        self.index.expansion_search = expansion
        self.fallback = fallback

    def search(self, query: np.ndarray, k: int, excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        wanted = k + excluded.size
        if wanted > len(self.index) // 2:
            return self.fallback.search(query, k, excluded)
        found = self.index.search(query, wanted, threads=1)
        rows = np.asarray(found.keys, dtype=np.int64)
        scores = 1.0 - np.asarray(found.distances, dtype=np.float32)
        if excluded.size:
            keep = ~np.isin(rows, excluded)
            rows, scores = rows[keep], scores[keep]
        if rows.size < k:  # HNSW returned too few after exclusion: be exact rather than short
            return self.fallback.search(query, k, excluded)
        return rows[:k], scores[:k]
