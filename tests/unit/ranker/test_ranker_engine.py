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
    index = HnswIndex.from_bytes(build_hnsw(vectors), 32, expansion=128, fallback=ExactIndex(vectors))
    rows, scores = index.search(vectors[5], 10, np.empty(0, np.int64))
    assert rows[0] == 5 and scores[0] == pytest.approx(1.0, abs=1e-2)
    rows, _ = index.search(vectors[5], 10, np.array([5]))
    assert 5 not in rows and len(rows) == 10
    rows, _ = index.search(vectors[5], 10, np.arange(0, 1990))  # too many exclusions: exact fallback
    assert sorted(rows.tolist()) == list(range(1990, 2000))


def _queries(rng, vectors, count):
    """Random directions and directions near the catalogue (what a trained encoder produces)."""
    random = rng.standard_normal((count, vectors.shape[1])).astype(np.float32)
    near = vectors[rng.integers(0, len(vectors), (count, 3))].mean(1)
    near += rng.standard_normal(near.shape).astype(np.float32) / (4 * np.sqrt(vectors.shape[1]))
    queries = np.concatenate([random, near])
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


@pytest.mark.parametrize("clustered", [True, False])
def test_int8_candidates_with_float32_rescoring_equal_the_float32_top_k(clustered, rng):
    from semrec_ranker.engine.index import QuantizedIndex, quantize

    vectors = random_unit_vectors(20_000, 64, seed=3, items_per_cluster=100 if clustered else None)
    exact = ExactIndex(vectors)
    index = QuantizedIndex(vectors, quantize(vectors), candidates=32, fallback=exact)
    for query in _queries(rng, vectors, 40):
        k = int(rng.integers(1, 30))
        excluded = np.unique(rng.integers(0, len(vectors), int(rng.integers(0, 50))))
        rows, scores = index.search(query, k, excluded)
        want_rows, want_scores = exact.search(query, k, excluded)
        np.testing.assert_array_equal(rows, want_rows)
        np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-5)
    assert index.stats["proved"] + index.stats["widened"] == 80  # answered by the int8 path, not the scan


@pytest.mark.parametrize("kernel", ["float32", "int8", "int8-prepacked"])
def test_a_batch_of_queries_gets_each_query_s_own_exact_top_k(kernel, rng):
    """search_batch scores the whole batch in one product; every answer must be the query's float32 top-k."""
    from semrec_ranker.engine.index import QuantizedIndex, quantize

    vectors = random_unit_vectors(20_000, 64, seed=6)
    exact = ExactIndex(vectors, block_rows=7_000)  # several blocks
    index = exact if kernel == "float32" else QuantizedIndex(vectors, quantize(vectors), candidates=32, fallback=exact,
                                                             prepack=kernel == "int8-prepacked")  # fmt: skip
    queries = _queries(rng, vectors, 12)
    ks = [int(k) for k in rng.integers(1, 30, len(queries))]
    excluded = [np.unique(rng.integers(0, len(vectors), int(rng.integers(0, 50)))) for _ in ks]
    excluded[0] = np.arange(0, 19_995)  # a query with almost every row excluded: the float32 scan answers it
    got = index.search_batch(queries, ks, excluded)
    for (rows, scores), query, k, skip in zip(got, queries, ks, excluded, strict=True):
        full = vectors @ query
        full[skip] = -np.inf
        want = np.argsort(-full, kind="stable")[:k]
        want = want[np.isfinite(full[want])]
        np.testing.assert_array_equal(rows, want)
        np.testing.assert_allclose(scores, full[want], rtol=0, atol=1e-5)
        assert not np.isin(rows, skip).any()
    if kernel != "float32":
        assert index.stats["batched"] == len(queries) - 1  # one int8 product for the batch
        assert index.stats["float32_scan"] == 1  # the query that excludes almost everything


def test_drop_excluded_keeps_order_and_removes_only_members():
    from semrec_ranker.engine.index import drop_excluded

    rows = np.array([9, 3, 7, 1, 12, 0])
    np.testing.assert_array_equal(drop_excluded(rows, np.array([0, 3, 12, 20])), [9, 7, 1])
    np.testing.assert_array_equal(drop_excluded(rows, np.empty(0, np.int64)), rows)
    np.testing.assert_array_equal(drop_excluded(rows, np.array([100])), rows)


def test_the_int8_path_widens_or_scans_when_its_bound_does_not_hold():
    from semrec_ranker.engine.index import QuantizedIndex, quantize

    # 3,000 near-duplicates of one direction: the int8 error swamps their score gaps, so the bound cannot
    # prove the first candidates; the answer must still be the float32 one
    rng = np.random.default_rng(0)
    base = rng.standard_normal(32).astype(np.float32)
    vectors = base + rng.standard_normal((3000, 32)).astype(np.float32) * 1e-3
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    exact = ExactIndex(vectors)
    index = QuantizedIndex(vectors, quantize(vectors), candidates=16, fallback=exact)
    query = base / np.linalg.norm(base)
    rows, _ = index.search(query, 10, np.empty(0, np.int64))
    np.testing.assert_array_equal(rows, exact.search(query, 10, np.empty(0, np.int64))[0])
    assert index.stats["widened"] + index.stats["float32_scan"] == 1 and index.stats["proved"] == 0


def test_quantisation_error_bound_holds_for_every_row(rng):
    from semrec_ranker.engine.index import quantize

    vectors = random_unit_vectors(5000, 48, seed=4)
    quantized = quantize(vectors, block_rows=777)  # blocks that do not divide the rows
    restored = quantized.items_t.T.astype(np.float32) * quantized.scales[:, None]
    errors = np.linalg.norm(vectors - restored, axis=1)
    assert errors.max() == pytest.approx(quantized.max_error, rel=1e-5)
    assert quantized.max_error < 0.05 and quantized.max_norm == pytest.approx(1.0, abs=1e-5)


def test_serving_arrays_are_written_once_and_memory_mapped(tmp_path):
    from semrec_ranker.engine.artifacts import shared_arrays

    vectors = random_unit_vectors(3000, 32, seed=5)
    blob = build_hnsw(vectors)
    first = shared_arrays(tmp_path, vectors, blob, with_quantized=True)
    stamp = (first.directory / "vectors.npy").stat().st_mtime_ns
    second = shared_arrays(tmp_path, vectors.copy(), blob, with_quantized=True)  # another worker, same bundle
    assert second.directory == first.directory and (first.directory / "vectors.npy").stat().st_mtime_ns == stamp
    assert isinstance(second.vectors, np.memmap) and isinstance(second.quantized.items_t, np.memmap)
    np.testing.assert_array_equal(second.vectors, vectors)
    index = HnswIndex.from_file(second.ann_path, 32, 64, ExactIndex(second.vectors))
    assert index.search(vectors[7], 5, np.empty(0, np.int64))[0][0] == 7
    for seed in (6, 7, 8):  # newer versions: only the newest `keep` (3) directories stay
        shared_arrays(tmp_path, random_unit_vectors(100, 32, seed=seed), None, with_quantized=False)
    assert not first.directory.exists() and len([d for d in tmp_path.iterdir() if d.is_dir()]) == 3
    np.testing.assert_array_equal(second.vectors[:3], vectors[:3])  # a mapping outlives its deleted file


def test_a_worker_never_replaces_the_copy_another_worker_finished_while_it_was_writing(tmp_path, monkeypatch):
    import semrec_ranker.engine.artifacts as artifacts

    vectors = random_unit_vectors(500, 16, seed=4)
    real_write = artifacts._write
    first = {}

    def slower_worker_write(directory, *args):
        if not first:  # the other worker writes, renames and starts serving while this one is still writing
            monkeypatch.setattr(artifacts, "_write", real_write)
            first["arrays"] = artifacts.shared_arrays(tmp_path, vectors, None, with_quantized=True)
            first["inode"] = (first["arrays"].directory / "vectors.npy").stat().st_ino
        real_write(directory, *args)

    monkeypatch.setattr(artifacts, "_write", slower_worker_write)
    second = artifacts.shared_arrays(tmp_path, vectors, None, with_quantized=True)
    assert second.directory == first["arrays"].directory
    assert (second.directory / "vectors.npy").stat().st_ino == first["inode"]  # the served copy is not replaced
    assert not [d for d in tmp_path.iterdir() if d.name.startswith(".staging-")]


def test_engine_results_do_not_depend_on_the_kernel_the_batch_or_the_shared_dir(tmp_path):
    from semrec_ranker.bench.synthetic import synthetic_bundle
    from semrec_ranker.engine import Engine

    bundle = synthetic_bundle(3000, dim=32, max_len=10, backbone="sasrec", seed=2)
    plain = Engine("1", bundle, exact_kernel="float32")
    fast = Engine("1", bundle, exact_kernel="int8", int8_min_items=0, rescore_candidates=16, shared_dir=tmp_path)
    assert fast.describe()["index"] == "exact-int8" and fast.describe()["shared_arrays"] is True
    rng = np.random.default_rng(9)
    histories = [[f"i{j}" for j in rng.integers(1, 3001, rng.integers(1, 15))] for _ in range(24)] + [["nope"]]
    queries = [fast.prepare(h, 10) for h in histories]
    batched = fast.run(queries)
    for history, together in zip(histories, batched, strict=True):
        alone = plain.recommend(history, 10)
        np.testing.assert_array_equal(together.rows, alone.rows)
        np.testing.assert_allclose(together.scores, alone.scores, rtol=0, atol=1e-5)
        assert together.fallback == alone.fallback and together.batch_size == len(histories)


def test_the_encoder_is_shared_as_external_data_and_the_directory_must_be_private(tmp_path):
    import os

    from semrec.errors import UserError
    from semrec_ranker.bench.synthetic import synthetic_bundle
    from semrec_ranker.engine import Engine
    from semrec_ranker.engine.artifacts import shared_arrays

    bundle = synthetic_bundle(500, dim=16, max_len=8, backbone="sasrec", seed=3)
    engine = Engine("1", bundle, shared_dir=tmp_path / "shared")
    (directory,) = [d for d in (tmp_path / "shared").iterdir() if d.is_dir()]
    # the tensors (500 x 16 item embeddings and more) live in encoder.data, which ONNX Runtime maps
    assert (directory / "encoder.data").stat().st_size > 500 * 16 * 4 > (directory / "encoder.onnx").stat().st_size
    np.testing.assert_array_equal(engine.recommend(["i1", "i2"], 5).rows, Engine("1", bundle).recommend(["i1", "i2"], 5).rows)
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    with pytest.raises(UserError, match="not be writable by group or others"):
        shared_arrays(open_dir, bundle.item_vectors, None, with_quantized=False)


def test_usearch_is_loaded_after_onnx_runtime_so_both_import_in_one_process():
    import subprocess
    import sys

    # importing onnxruntime after usearch segfaults; `usearch_index` loads them in the order that works
    code = "from semrec.store.ann import usearch_index; usearch_index(); import onnxruntime; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_an_i8_index_with_float32_rescoring_finds_the_exact_top_10_and_scores_it_exactly(rng):
    vectors = random_unit_vectors(6000, 32, seed=11, items_per_cluster=60)
    exact = ExactIndex(vectors)
    blob = build_hnsw(vectors, threads=1, dtype="i8")
    assert len(blob) < len(build_hnsw(vectors, threads=1)), "i8 rows take less room than f16 rows"
    none = np.empty(0, np.int64)
    queries = _queries(rng, vectors, 100)[100:]  # the directions near the catalogue
    truth = [exact.search(query, 10, none)[0] for query in queries]
    recall = {}
    for rescore in (10, 32):
        index = HnswIndex.from_bytes(blob, 32, expansion=64, fallback=exact, rescore=rescore)
        assert index.dtype == "i8"
        hits = []
        for query, expected in zip(queries, truth, strict=True):
            rows, scores = index.search(query, 10, none)
            np.testing.assert_allclose(scores, vectors[rows] @ query, rtol=0, atol=1e-6)  # float32, not i8, scores
            assert np.all(np.diff(scores) <= 0)
            hits.append(np.isin(rows, expected).mean())
        recall[rescore] = np.mean(hits)
    # items the i8 graph ranks just below the 10th get their place back when more hits are rescored
    assert recall[32] >= 0.97 and recall[32] > recall[10]


def test_the_rescored_hits_are_at_least_k_plus_the_excluded_ones(rng):
    vectors = random_unit_vectors(3000, 16, seed=12)
    index = HnswIndex.from_bytes(build_hnsw(vectors, dtype="i8"), 16, expansion=64, fallback=ExactIndex(vectors),
                                 rescore=1)  # fmt: skip
    excluded = np.arange(0, 40)
    rows, _ = index.search(vectors[3], 10, excluded)
    assert len(rows) == 10 and not np.isin(rows, excluded).any()


def test_an_unknown_ann_dtype_is_refused():
    with pytest.raises(ValueError, match="use one of f16, i8"):
        build_hnsw(random_unit_vectors(100, 8, seed=1), dtype="f8")  # type: ignore[arg-type]
