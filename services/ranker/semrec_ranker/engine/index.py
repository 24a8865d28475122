"""Top-k over the normalised item matrix.

- `ExactIndex`: float32 matrix-vector products + argpartition (the reference, and the fallback).
- `QuantizedIndex`: the same answer, faster: an int8 copy of the matrix (one scale per row) is scored by
  ONNX Runtime's `MatMulInteger` (MLAS u8s8 kernels) and its `TopK` picks candidates; the candidates are
  rescored in float32 and a bound on the quantisation error proves that no other row can enter the top k
  (else more candidates, else the float32 scan): results equal `ExactIndex`'s.
- `HnswIndex`: a usearch HNSW index (approximate), its hits rescored in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from semrec.store.ann import usearch_index

SearchResult = tuple[np.ndarray, np.ndarray]


def drop_excluded(rows: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """`rows` without the members of `excluded` (sorted unique), order kept: a binary search per row, cheaper
    than `np.isin` (which sorts both) for the few dozen rows of a request."""
    if not excluded.size or not rows.size:
        return rows
    at = np.searchsorted(excluded, rows)
    hit = excluded[np.minimum(at, excluded.size - 1)] == rows
    return rows[~hit]


# Rounding of a float32 dot product over d terms is below d * 2**-24 for unit vectors; this covers d <= 4096
# with a margin (and the float32 rounding of the approximate scores).
FLOAT_SLACK = 4096 * 2**-24 * 4


class ExactIndex:
    """Cosine top-k by matrix-vector products over blocks of rows, each block reduced to its own top-k
    with `argpartition` and the candidates merged: the per-query allocations stay bounded by the block
    size (not the catalogue) and each block's scores are still in cache when they are partitioned."""

    def __init__(self, vectors: np.ndarray, block_rows: int = 65_536) -> None:
        self.vectors = vectors
        self.block_rows = block_rows

    def search(self, query: np.ndarray, k: int, excluded: np.ndarray) -> SearchResult:
        """Rows and scores of the k best rows not in `excluded` (sorted unique row numbers)."""
        return self.search_batch(np.asarray(query, dtype=np.float32)[None, :], [k], [excluded])[0]

    def search_batch(self, queries: np.ndarray, ks: list[int], excluded: list[np.ndarray]) -> list[SearchResult]:
        """`search` for each row of `queries` [b, dim]: one matrix product per block for the whole batch, so
        the matrix is read once per batch instead of once per query (the scan is memory-bound)."""
        queries = np.asarray(queries, dtype=np.float32)
        n = self.vectors.shape[0]
        rows: list[list[np.ndarray]] = [[] for _ in ks]
        scores: list[list[np.ndarray]] = [[] for _ in ks]
        for start in range(0, n, self.block_rows):
            part = self.vectors[start : start + self.block_rows]
            # [b, rows of the block]; one query: a matrix-vector product (BLAS' GEMV path)
            block_all = (part @ queries[0])[None, :] if len(queries) == 1 else queries @ part.T
            width = block_all.shape[1]
            for j, (k, skip) in enumerate(zip(ks, excluded, strict=True)):
                block = block_all[j]
                lo, hi = np.searchsorted(skip, (start, start + width))
                if hi > lo:
                    block[skip[lo:hi] - start] = -np.inf
                kk = min(k, width)
                top = np.argpartition(block, -kk)[-kk:] if kk < width else np.arange(width)
                rows[j].append(top + start)
                scores[j].append(block[top])
        out = []
        for j, k in enumerate(ks):
            all_rows, all_scores = np.concatenate(rows[j]), np.concatenate(scores[j])
            order = np.argsort(-all_scores, kind="stable")[:k]
            order = order[np.isfinite(all_scores[order])]
            out.append((all_rows[order], all_scores[order]))
        return out


@dataclass(frozen=True)
class QuantizedMatrix:
    """7-bit values in an int8 item matrix, transposed ([dim, n]: the layout MLAS' GEMV path reads fastest),
    x ~ scales * q."""

    items_t: np.ndarray  # int8 [dim, n]
    scales: np.ndarray  # float32 [n]
    max_error: float  # max over rows of ||x - scale * q||
    max_norm: float  # max over rows of ||x||


ITEM_LEVELS = 63  # 7 bits: see `quantize`


def quantize(vectors: np.ndarray, block_rows: int = 65_536) -> QuantizedMatrix:
    """Symmetric per-row quantisation to 7 bits (scale = max |x| / 63), block by block so that no float copy
    of the whole matrix is made. 7, not 8 bits: MLAS' AVX2 u8s8 kernel adds pairs of u8 x s8 products in
    int16 with saturation (vpmaddubsw), so 255 x 127 x 2 would overflow; 255 x 63 x 2 cannot (ONNX
    Runtime's "reduce_range"). The exactness bound accounts for the coarser grid."""
    n, dim = vectors.shape
    items_t = np.empty((dim, n), dtype=np.int8)
    scales = np.empty(n, dtype=np.float32)
    max_error = max_norm = 0.0
    for start in range(0, n, block_rows):
        block = np.asarray(vectors[start : start + block_rows], dtype=np.float32)
        scale = np.abs(block).max(axis=1) / ITEM_LEVELS
        scale[scale == 0] = 1.0
        q = np.clip(np.rint(block / scale[:, None]), -ITEM_LEVELS, ITEM_LEVELS)
        error = np.linalg.norm(block - q * scale[:, None], axis=1)
        items_t[:, start : start + block.shape[0]] = q.T.astype(np.int8)
        scales[start : start + block.shape[0]] = scale
        max_error = max(max_error, float(error.max(initial=0.0)))
        max_norm = max(max_norm, float(np.linalg.norm(block, axis=1).max(initial=0.0)))
    return QuantizedMatrix(items_t, scales, max_error, max_norm)


def _candidate_graph(dim: int, constants: QuantizedMatrix | None = None) -> bytes:
    """ONNX graph: approx = (q_u8 - 128) @ items_t * scales, then TopK(approx, k). With `constants`, the int8
    matrix and its scales are initializers of the graph instead of inputs: MLAS then packs the matrix once,
    at session creation, instead of on every call (faster, but a packed copy in each worker's heap)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("MatMulInteger", ["query", "items_t", "zero_point"], ["dots"]),
        helper.make_node("Cast", ["dots"], ["dots_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["dots_f", "scales"], ["approx"]),
        helper.make_node("TopK", ["approx", "k"], ["values", "indices"], axis=-1, largest=1, sorted=1),
    ]
    inputs = [helper.make_tensor_value_info("query", TensorProto.UINT8, ["b", dim])]
    initializers = [numpy_helper.from_array(np.array(128, dtype=np.uint8), "zero_point")]
    if constants is None:
        inputs += [helper.make_tensor_value_info("items_t", TensorProto.INT8, [dim, "n"]),
                   helper.make_tensor_value_info("scales", TensorProto.FLOAT, ["n"])]  # fmt: skip
    else:
        initializers += [numpy_helper.from_array(np.ascontiguousarray(constants.items_t), "items_t"),
                         numpy_helper.from_array(np.ascontiguousarray(constants.scales), "scales")]  # fmt: skip
    graph = helper.make_graph(
        nodes, "semrec_int8_topk", [*inputs, helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, ["b", "c"]),
         helper.make_tensor_value_info("indices", TensorProto.INT64, ["b", "c"])],
        initializer=initializers,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


class QuantizedIndex:
    """Exact cosine top-k: int8 candidates (ONNX Runtime), float32 rescoring, a proof of exactness.

    For a query q (quantised to int8 the same way) the approximate score of row j differs from q.x_j by at
    most delta = ||q - q^|| * max||x|| + ||q^|| * max_j ||x_j - x^_j||. Every row outside the C candidates
    has an approximate score <= the C-th one (a_C), so its exact score is <= a_C + delta; if the k-th best
    rescored candidate beats that, the candidates' top k is the exact top k. Otherwise the candidate count
    grows 8x, and past half the catalogue the float32 scan answers. `stats` counts how often each happened
    (`batched`: proved from a batch's shared product).
    """

    def __init__(self, vectors: np.ndarray, quantized: QuantizedMatrix, candidates: int = 64, threads: int = 1,
                 fallback: ExactIndex | None = None, prepack: bool = False) -> None:  # fmt: skip
        import onnxruntime as ort

        self.vectors = vectors
        self.quantized = quantized
        self.candidates = candidates
        self.fallback = fallback or ExactIndex(vectors)
        self.n = vectors.shape[0]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.prepacked = prepack
        graph = _candidate_graph(vectors.shape[1], quantized if prepack else None)
        self.session = ort.InferenceSession(graph, sess_options=options, providers=["CPUExecutionProvider"])
        del graph  # with prepack the session holds its own (packed) copy
        self.stats = {"proved": 0, "batched": 0, "widened": 0, "float32_scan": 0}

    def _candidates(self, query_u8: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Top `count` approximate rows of each query row: indices and values, [b, count] each."""
        feed = {"query": query_u8, "k": np.array([count], dtype=np.int64)}
        if not self.prepacked:
            feed.update(items_t=self.quantized.items_t, scales=self.quantized.scales)
        values, indices = self.session.run(None, feed)
        return indices, values

    def _quantized_query(self, query: np.ndarray) -> tuple[np.ndarray, float, float] | None:
        """(u8 query row, its scale, the error bound delta), or None where only the float32 scan is safe."""
        peak = float(np.abs(query).max(initial=0.0))
        if peak == 0.0 or not np.isfinite(peak):
            return None
        q_scale = peak / 127.0
        q_int = np.clip(np.rint(query / q_scale), -127, 127)
        q_hat = q_int.astype(np.float32) * q_scale
        delta = (float(np.linalg.norm(query - q_hat)) * self.quantized.max_norm
                 + float(np.linalg.norm(q_hat)) * self.quantized.max_error + FLOAT_SLACK)  # fmt: skip
        return (q_int + 128).astype(np.uint8), q_scale, delta

    def _proved(self, query: np.ndarray, k: int, excluded: np.ndarray, rows: np.ndarray, approx: np.ndarray,
                q_scale: float, delta: float) -> SearchResult | None:  # fmt: skip
        """The exact top k among the candidates if the bound proves no other row can beat it, else None."""
        floor = float(approx[-1]) * q_scale  # the C-th approximate score: no other row is above it
        rows = drop_excluded(rows, excluded)
        if rows.size < k:
            return None
        scores = self.vectors[rows] @ query
        order = np.argsort(-scores, kind="stable")[:k]
        if scores[order[-1]] > floor + delta:
            return rows[order], scores[order]
        return None

    def _count(self, k: int, excluded: np.ndarray) -> int:
        return max(self.candidates, 2 * k) + excluded.size

    def search(self, query: np.ndarray, k: int, excluded: np.ndarray) -> SearchResult:
        query = np.asarray(query, dtype=np.float32)
        count = self._count(k, excluded)
        quantized = self._quantized_query(query)
        if quantized is None or 2 * count > self.n:
            self.stats["float32_scan"] += 1
            return self.fallback.search(query, k, excluded)
        query_u8, q_scale, delta = quantized
        widened = False
        while 2 * count <= self.n:
            rows, approx = self._candidates(query_u8[None, :], count)
            found = self._proved(query, k, excluded, rows[0], approx[0], q_scale, delta)
            if found is not None:
                self.stats["widened" if widened else "proved"] += 1
                return found
            count *= 8
            widened = True
        self.stats["float32_scan"] += 1
        return self.fallback.search(query, k, excluded)

    def search_batch(self, queries: np.ndarray, ks: list[int], excluded: list[np.ndarray]) -> list[SearchResult]:
        """`search` for each row of `queries`: one int8 product and one TopK for the whole batch (each query
        gets the largest candidate count of the batch: more candidates only make the proof easier); a query
        whose bound is not met goes on alone through `search` (8x the candidates, then the float32 scan)."""
        queries = np.asarray(queries, dtype=np.float32)
        out: list[SearchResult | None] = [None] * len(ks)
        counts = [self._count(k, e) for k, e in zip(ks, excluded, strict=True)]
        quantized = [self._quantized_query(q) for q in queries]
        batched = [j for j, q in enumerate(quantized) if q is not None and 2 * counts[j] <= self.n]
        if len(batched) > 1:
            count = max(counts[j] for j in batched)
            rows, approx = self._candidates(np.stack([quantized[j][0] for j in batched]), count)  # type: ignore[index]
            for i, j in enumerate(batched):
                _, q_scale, delta = quantized[j]  # type: ignore[misc]
                out[j] = self._proved(queries[j], ks[j], excluded[j], rows[i], approx[i], q_scale, delta)
                if out[j] is not None:
                    self.stats["batched"] += 1
        for j, found in enumerate(out):
            if found is None:
                out[j] = self.search(queries[j], ks[j], excluded[j])
        return out  # type: ignore[return-value]


class HnswIndex:
    """A usearch HNSW index (inner product on unit vectors = cosine) published inside the bundle. It stores f16
    or i8 vectors; its best `rescore` hits (at least k plus the excluded items) are rescored with the float32
    vectors, so the scores and their order are exact and an item the index ranked just below the top k by its
    rounding error gets its place back."""

    def __init__(self, index, dim: int, expansion: int, fallback: ExactIndex, rescore: int = 32) -> None:
        if index is None or index.ndim != dim:
            raise ValueError("ANN index does not match the item vectors")
        self.index = index
        self.index.expansion_search = expansion
        self.fallback = fallback
        self.rescore = rescore

    @classmethod
    def from_bytes(cls, blob: bytes, dim: int, expansion: int, fallback: ExactIndex, rescore: int = 32) -> HnswIndex:
        return cls(usearch_index().restore(bytearray(blob), view=False), dim, expansion, fallback, rescore)

    @classmethod
    def from_file(cls, path, dim: int, expansion: int, fallback: ExactIndex, rescore: int = 32) -> HnswIndex:
        """Memory-mapped (usearch `view`): processes that map the same file share its pages."""
        return cls(usearch_index().restore(str(path), view=True), dim, expansion, fallback, rescore)

    @property
    def dtype(self) -> str:
        """The index's vector storage: "f16" or "i8" (usearch's scalar kind)."""
        return self.index.dtype.name.lower()

    def search(self, query: np.ndarray, k: int, excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        needed = k + excluded.size
        if needed > len(self.index) // 2:
            return self.fallback.search(query, k, excluded)
        found = self.index.search(query, min(max(needed, self.rescore), len(self.index)), threads=1)
        rows = drop_excluded(np.asarray(found.keys, dtype=np.int64), excluded)
        if rows.size < k:  # HNSW returned too few after exclusion: be exact rather than short
            return self.fallback.search(query, k, excluded)
        scores = self.fallback.vectors[rows] @ np.asarray(query, dtype=np.float32)
        order = np.argsort(-scores, kind="stable")[:k]
        return rows[order], scores[order]

    def search_batch(self, queries: np.ndarray, ks: list[int], excluded: list[np.ndarray]) -> list[SearchResult]:
        """One graph search per query (HNSW reads a few thousand rows per query: nothing to share)."""
        return [self.search(q, k, e) for q, k, e in zip(queries, ks, excluded, strict=True)]
