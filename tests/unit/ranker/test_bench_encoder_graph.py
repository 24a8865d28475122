"""The synthetic encoders' two graph forms (final position, all positions): same embeddings through ONNX
Runtime, the bench cache switches a cached bundle's form without rebuilding its vectors or index, and
`semrec bench encoder` records both forms' numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from semrec.bundle import Bundle
from semrec_ranker.bench.encoder_graph import EncoderGraphBenchConfig, bench_encoder_graph
from semrec_ranker.bench.markdown import render
from semrec_ranker.bench.ranker import RankerBenchConfig, bench_bundle
from semrec_ranker.bench.synthetic import synthetic_bundle, synthetic_encoder
from semrec_ranker.engine.encoder import OnnxEncoder


def padded(rows: list[list[int]], width: int) -> np.ndarray:
    out = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        if row:
            out[i, width - len(row) :] = row
    return out


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "mean"])
def test_both_graph_forms_give_the_same_embeddings(backbone):
    forms = {g: OnnxEncoder(synthetic_encoder(backbone, 300, 32, 10, seed=4, encoder_graph=g), device="cpu")
             for g in ("final-position", "all-positions")}  # fmt: skip
    ids = padded([[5], [1, 2, 3], list(range(1, 11)), [299, 7, 7, 12]], 10)
    final, full = (forms[g].encode(ids) for g in ("final-position", "all-positions"))
    assert final.shape == (4, 32)
    assert np.abs(final - full).max() < 1e-5
    assert np.abs(final[1] - final[2]).max() > 1e-3  # the histories matter


def test_the_default_synthetic_bundle_is_the_final_position_form():
    bundle = synthetic_bundle(50, dim=16, max_len=6, backbone="sasrec", seed=1)
    assert bundle.metadata["encoder_graph"] == "final-position"
    assert bundle.encoder_onnx == synthetic_encoder("sasrec", 50, 16, 6, seed=1)


def test_a_cached_bench_bundle_of_the_other_form_keeps_its_vectors_and_index(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMREC_CACHE", str(tmp_path))
    config = RankerBenchConfig(dim=16, max_len=6, seed=2, hnsw_expansion_add=16, encoder_graph="all-positions")
    old = bench_bundle(config, 400, with_ann=True)
    cached = tmp_path / "bench" / "http-sasrec-400x16-len6-seed2"
    meta = json.loads((cached / "metadata.json").read_text())
    del meta["encoder_graph"]  # as a bundle cached before the graph form was recorded
    (cached / "metadata.json").write_text(json.dumps(meta))
    new = bench_bundle(config.model_copy(update={"encoder_graph": "final-position"}), 400, with_ann=True)
    assert new.metadata["encoder_graph"] == "final-position"
    assert new.encoder_onnx == synthetic_encoder("sasrec", 400, 16, 6, seed=2)
    assert new.encoder_onnx != old.encoder_onnx
    assert new.ann_index == old.ann_index and np.array_equal(new.item_vectors, old.item_vectors)
    assert Bundle.load(cached).metadata["encoder_graph"] == "final-position"


def test_the_encoder_bench_records_both_forms_and_same_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMREC_CACHE", str(tmp_path / "cache"))
    config = EncoderGraphBenchConfig(n_items=600, dim=16, max_len=8, history_len=5, batches=[1, 4], rounds=2,
                                     calls=2, queries=16, floor_batch=4, hnsw_expansion_add=16,
                                     results_dir=tmp_path / "results", tag="-test")  # fmt: skip
    path = bench_encoder_graph(config)
    assert path == tmp_path / "results" / "ranker-encoder-graph-test.json"
    runs = json.loads(path.read_text())["runs"]
    seen = {(r["protocol"], r["config"]["encoder_graph"], r["config"]["batch"]) for r in runs}
    for graph in ("final-position", "all-positions"):
        assert {("encoder", graph, 1), ("encoder", graph, 4)} <= seen
        assert {("floor-hnsw", graph, 1), ("floor-batch-hnsw", graph, 4), ("floor-exact", graph, 1)} <= seen
    for run in runs:
        assert run["metrics"]["p50_ms"] > 0 and "load_average_1m_before" in run["metrics"]
        if run["protocol"] == "encoder":
            assert run["metrics"]["max_abs_diff"] < 1e-5
        else:
            assert run["metrics"]["identical_top_k"] >= 0.9  # equal up to float rounding: a near-tie may flip
    table = render(path)
    assert sum(line.startswith("| sasrec | encoder | ") for line in table.splitlines()) == 2  # batches 1 and 4
    assert "| sasrec | floor-hnsw | 1 |" in table and "| sasrec | floor-batch-exact" in table
