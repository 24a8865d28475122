"""Top-k over the normalised item matrix: exact (matrix product + argpartition) or an HNSW index (usearch)."""

from __future__ import annotations

import numpy as np


class ExactIndex:
    """Cosine top-k by matrix-vector products over blocks of rows, each block reduced to its own top-k
    with `argpartition` and the candidates merged: the per-query allocations stay bounded by the block
    size (not the catalogue) and each block's scores are still in cache when they are partitioned."""

    def __init__(self, vectors: np.ndarray, block_rows: int = 65_536) -> None:
        self.vectors = vectors
        self.block_rows = block_rows

    def search(self, query: np.ndarray, k: int, excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores of the k best rows not in `excluded` (sorted unique row numbers)."""
        n = self.vectors.shape[0]
        rows, scores = [], []
        for start in range(0, n, self.block_rows):
            block = self.vectors[start : start + self.block_rows] @ query
            lo, hi = np.searchsorted(excluded, (start, start + block.shape[0]))
            if hi > lo:
                block[excluded[lo:hi] - start] = -np.inf
            kk = min(k, block.shape[0])
            top = np.argpartition(block, -kk)[-kk:] if kk < block.shape[0] else np.arange(block.shape[0])
            rows.append(top + start)
            scores.append(block[top])
        all_rows, all_scores = np.concatenate(rows), np.concatenate(scores)
        order = np.argsort(-all_scores, kind="stable")[:k]
        order = order[np.isfinite(all_scores[order])]
        return all_rows[order], all_scores[order]


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
