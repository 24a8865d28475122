"""One loaded bundle, ready to serve: id maps, the encoder session, the item index, the popularity order.

An `Engine` is immutable once built, so a hot reload builds a new one off the request path and swaps a
single reference; requests that already hold the old engine finish on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from semrec.bundle import Bundle

from semrec_ranker.engine.encoder import OnnxEncoder, SequenceEncoder
from semrec_ranker.engine.index import ExactIndex, HnswIndex

log = logging.getLogger("semrec.ranker")

# Bundle metadata written by `semrec refresh` (absent in freshly exported bundles).
ENCODER_VOCAB_KEY = "encoder_vocab_size"  # items 1..N are known to the encoder; later ones only as outputs
RETIRED_KEY = "retired_items"  # removed from the catalogue: never recommended


@dataclass(frozen=True)
class Recommendation:
    rows: np.ndarray
    scores: np.ndarray
    fallback: bool
    unknown_items: list[str]
    used_history: int
    encode_s: float
    topk_s: float


class Engine:
    def __init__(
        self,
        version: str,
        bundle: Bundle,
        *,
        ort_threads: int = 1,
        device: str = "auto",
        ann_threshold: int = 50_000,
        ann_expansion: int = 64,
        encoder: SequenceEncoder | None = None,
    ) -> None:
        self.version = version
        self.metadata = bundle.metadata
        self.item_ids: list[str] = bundle.item_ids
        self.row_of: dict[str, int] = {item: row for row, item in enumerate(bundle.item_ids)}
        self.n_items = len(bundle.item_ids)
        self.max_len = bundle.max_len
        self.encoder_vocab = int(bundle.metadata.get(ENCODER_VOCAB_KEY, self.n_items))
        norms = np.linalg.norm(bundle.item_vectors[: min(self.n_items, 1000)], axis=1)
        if norms.size and not np.allclose(norms, 1.0, atol=1e-3):
            raise ValueError("item vectors are not L2-normalised")
        self.vectors = bundle.item_vectors
        retired = [self.row_of[i] for i in bundle.metadata.get(RETIRED_KEY, []) if i in self.row_of]
        self.retired = np.array(sorted(retired), dtype=np.int64)
        order = np.argsort(-bundle.popularity, kind="stable")
        self.popular_rows = order[~np.isin(order, self.retired)] if self.retired.size else order
        self.encoder: SequenceEncoder = encoder or OnnxEncoder(bundle.encoder_onnx, ort_threads, device)
        self.exact = ExactIndex(self.vectors)
        self.index: ExactIndex | HnswIndex = self.exact
        self.ann = False
        if self.n_items >= ann_threshold and bundle.ann_index is not None:
            self.index = HnswIndex(bundle.ann_index, bundle.dim, ann_expansion, self.exact)
            self.ann = True
        elif self.n_items >= ann_threshold:
            log.warning("catalogue of %d items >= ann_threshold but the bundle has no ANN index: exact top-k",
                        self.n_items)  # fmt: skip
        self.encoder.encode(np.zeros((1, self.max_len), dtype=np.int64))  # warm-up: first run allocates

    def describe(self) -> dict:
        return {
            "version": self.version,
            "n_items": self.n_items,
            "dim": int(self.vectors.shape[1]),
            "max_len": self.max_len,
            "provider": self.encoder.provider,
            "index": "hnsw" if self.ann else "exact",
            "backbone": self.metadata.get("backbone"),
        }

    def map_items(self, item_ids: Sequence[str]) -> tuple[list[int], list[str]]:
        """Row numbers of known ids (order kept) and the unknown ids."""
        rows, unknown = [], []
        for item in item_ids:
            row = self.row_of.get(item)
            if row is None:
                unknown.append(item)
            else:
                rows.append(row)
        return rows, unknown

    def _excluded(self, rows: Sequence[int]) -> np.ndarray:
        if not rows:
            return self.retired
        excluded = np.fromiter(rows, dtype=np.int64, count=len(rows))
        return np.union1d(excluded, self.retired) if self.retired.size else np.unique(excluded)

    def encode(self, rows: Sequence[int]) -> np.ndarray:
        indices = [r + 1 for r in rows if r < self.encoder_vocab][-self.max_len :]
        batch = np.zeros((1, self.max_len), dtype=np.int64)
        if indices:
            batch[0, self.max_len - len(indices) :] = indices
        return self.encoder.encode(batch)[0]

    def recommend(self, history: Sequence[str], k: int, exclude_seen: bool = True,
                  exclude: Sequence[str] = ()) -> Recommendation:  # fmt: skip
        rows, unknown = self.map_items(history)
        exclude_rows, _ = self.map_items(exclude)
        if exclude_seen:
            exclude_rows = exclude_rows + rows
        excluded = self._excluded(exclude_rows)
        encodable = [r for r in rows if r < self.encoder_vocab]
        if not encodable:
            start = time.perf_counter()
            head = self.popular_rows[: k + excluded.size]
            top = head[~np.isin(head, excluded)][:k]
            return Recommendation(top, np.zeros(top.size, np.float32), True, unknown, 0, 0.0,
                                  time.perf_counter() - start)  # fmt: skip
        start = time.perf_counter()
        query = self.encode(encodable)
        encoded = time.perf_counter()
        top, scores = self.index.search(query, k, excluded)
        return Recommendation(top, scores, False, unknown, min(len(encodable), self.max_len),
                              encoded - start, time.perf_counter() - encoded)  # fmt: skip

    def similar(self, item_id: str, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        row = self.row_of.get(item_id)
        if row is None:
            return None
        return self.index.search(self.vectors[row], k, self._excluded([row]))
