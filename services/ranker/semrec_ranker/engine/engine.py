"""One loaded bundle, ready to serve: id maps, the encoder session, the item index, the popularity order.

An `Engine` is immutable once built, so a hot reload builds a new one off the request path and swaps a
single reference; requests that already hold the old engine finish on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from semrec.bundle import Bundle

from semrec_ranker.engine.artifacts import in_memory_arrays, shared_arrays
from semrec_ranker.engine.encoder import OnnxEncoder, SequenceEncoder, refuse_external_data
from semrec_ranker.engine.index import ExactIndex, HnswIndex, QuantizedIndex

log = logging.getLogger("semrec.ranker")

# Bundle metadata written by `semrec refresh` (absent in freshly exported bundles).
ENCODER_VOCAB_KEY = "encoder_vocab_size"  # items 1..N are known to the encoder; later ones only as outputs
RETIRED_KEY = "retired_items"  # removed from the catalogue: never recommended

ExactKernel = Literal["int8", "float32"]


@dataclass(frozen=True)
class Recommendation:
    rows: np.ndarray
    scores: np.ndarray
    fallback: bool
    unknown_items: list[str]
    used_history: int
    encode_s: float  # of the whole batch the request was encoded in
    topk_s: float
    batch_size: int = 1


@dataclass(frozen=True)
class Query:
    """A request mapped to rows, ready for `Engine.run` (alone or in a batch with others)."""

    rows: list[int]  # encodable history rows, oldest first (empty: popularity fallback)
    excluded: np.ndarray  # sorted unique rows never to recommend
    k: int
    unknown_items: list[str]


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
        ann_rescore: int = 32,
        encoder: SequenceEncoder | None = None,
        exact_kernel: ExactKernel = "int8",
        int8_min_items: int = 20_000,
        rescore_candidates: int = 256,
        topk_threads: int = 1,
        shared_dir: Path | None = None,
        int8_prepack: bool = True,
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
        use_ann = self.n_items >= ann_threshold and bundle.ann_index is not None
        if self.n_items >= ann_threshold and bundle.ann_index is None:
            log.warning("catalogue of %d items >= ann_threshold but the bundle has no ANN index: exact top-k",
                        self.n_items)  # fmt: skip
        with_int8 = exact_kernel == "int8" and self.n_items >= int8_min_items
        ann_blob = bundle.ann_index if use_ann else None
        if shared_dir is not None:
            encoder_onnx = None
            if encoder is None:
                refuse_external_data(bundle.encoder_onnx)  # before it is written out with its tensors in a file
                encoder_onnx = bundle.encoder_onnx
            arrays = shared_arrays(Path(shared_dir), bundle.item_vectors, ann_blob, with_int8, encoder_onnx)
        else:
            arrays = in_memory_arrays(bundle.item_vectors, with_int8)
        self.shared_dir = arrays.directory
        self.vectors = arrays.vectors
        retired = [self.row_of[i] for i in bundle.metadata.get(RETIRED_KEY, []) if i in self.row_of]
        self.retired = np.array(sorted(retired), dtype=np.int64)
        order = np.argsort(-bundle.popularity, kind="stable")
        self.popular_rows = order[~np.isin(order, self.retired)] if self.retired.size else order
        self.encoder: SequenceEncoder = encoder or OnnxEncoder(arrays.encoder_path or bundle.encoder_onnx,
                                                               ort_threads, device)  # fmt: skip
        self.exact: ExactIndex | QuantizedIndex = ExactIndex(self.vectors)
        if arrays.quantized is not None:
            self.exact = QuantizedIndex(self.vectors, arrays.quantized, rescore_candidates, topk_threads, self.exact,
                                        prepack=int8_prepack)  # fmt: skip
        self.index: ExactIndex | QuantizedIndex | HnswIndex = self.exact
        self.ann = use_ann
        if use_ann:
            fallback = self.exact if isinstance(self.exact, ExactIndex) else self.exact.fallback
            if arrays.ann_path is not None:
                self.index = HnswIndex.from_file(arrays.ann_path, bundle.dim, ann_expansion, fallback, ann_rescore)
            else:
                self.index = HnswIndex.from_bytes(bundle.ann_index, bundle.dim, ann_expansion, fallback, ann_rescore)
        self.encoder.encode(np.zeros((1, self.max_len), dtype=np.int64))  # warm-up: first run allocates

    @property
    def index_kind(self) -> str:
        if self.ann:
            return "hnsw"
        return "exact-int8" if isinstance(self.exact, QuantizedIndex) else "exact"

    def describe(self) -> dict:
        return {
            "version": self.version,
            "n_items": self.n_items,
            "dim": int(self.vectors.shape[1]),
            "max_len": self.max_len,
            "provider": self.encoder.provider,
            "index": self.index_kind,
            **({"ann_dtype": self.index.dtype} if isinstance(self.index, HnswIndex) else {}),
            "shared_arrays": self.shared_dir is not None,
            "backbone": self.metadata.get("backbone"),
            # bundles exported before the final-position graph record none: their encoder computes every position
            "encoder_graph": self.metadata.get("encoder_graph", "all-positions"),
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

    def _padded(self, rows: Sequence[int]) -> np.ndarray:
        indices = [r + 1 for r in rows][-self.max_len :]
        padded = np.zeros(self.max_len, dtype=np.int64)
        if indices:
            padded[self.max_len - len(indices) :] = indices
        return padded

    def encode(self, rows: Sequence[int]) -> np.ndarray:
        encodable = [r for r in rows if r < self.encoder_vocab]
        return self.encoder.encode(self._padded(encodable)[None, :])[0]

    def prepare(self, history: Sequence[str], k: int, exclude_seen: bool = True,
                exclude: Sequence[str] = ()) -> Query:  # fmt: skip
        rows, unknown = self.map_items(history)
        exclude_rows, _ = self.map_items(exclude)
        if exclude_seen:
            exclude_rows = exclude_rows + rows
        encodable = [r for r in rows if r < self.encoder_vocab]
        return Query(encodable, self._excluded(exclude_rows), k, unknown)

    def run(self, queries: Sequence[Query]) -> list[Recommendation]:
        """Recommendations for prepared queries: the histories go through one encoder call and the top-k of
        the whole batch through one `search_batch` (one pass over the matrix for the exact indexes). Each
        query's answer is its exact top-k (or its own HNSW search), so a request gets the same answer alone
        or batched."""
        results: list[Recommendation | None] = [None] * len(queries)
        encoded = [i for i, q in enumerate(queries) if q.rows]
        for i, query in enumerate(queries):
            if not query.rows:
                start = time.perf_counter()
                head = self.popular_rows[: query.k + query.excluded.size]
                top = head[~np.isin(head, query.excluded)][: query.k]
                results[i] = Recommendation(top, np.zeros(top.size, np.float32), True, query.unknown_items, 0,
                                            0.0, time.perf_counter() - start, len(queries))  # fmt: skip
        if encoded:
            start = time.perf_counter()
            batch = np.stack([self._padded(queries[i].rows) for i in encoded])
            vectors = self.encoder.encode(batch)
            encode_s = time.perf_counter() - start
            start = time.perf_counter()
            found = self.index.search_batch(vectors, [queries[i].k for i in encoded],
                                            [queries[i].excluded for i in encoded])  # fmt: skip
            topk_s = (time.perf_counter() - start) / len(encoded)  # the exact scan is shared by the batch
            for (top, scores), i in zip(found, encoded, strict=True):
                query = queries[i]
                results[i] = Recommendation(top, scores, False, query.unknown_items,
                                            min(len(query.rows), self.max_len), encode_s, topk_s,
                                            len(queries))  # fmt: skip
        return results  # type: ignore[return-value]

    def recommend(self, history: Sequence[str], k: int, exclude_seen: bool = True,
                  exclude: Sequence[str] = ()) -> Recommendation:  # fmt: skip
        return self.run([self.prepare(history, k, exclude_seen, exclude)])[0]

    def similar(self, item_id: str, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        row = self.row_of.get(item_id)
        if row is None:
            return None
        return self.index.search(np.asarray(self.vectors[row]), k, self._excluded([row]))
