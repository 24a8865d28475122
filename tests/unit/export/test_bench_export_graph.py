"""`semrec bench export`: every backbone's two exported forms give the same embeddings, and both are timed."""

from __future__ import annotations

import json

from semrec_ranker.bench.markdown import render
from semrec_worker.commands.bench_export import ExportGraphBenchConfig, bench_export_graph


def test_the_export_bench_times_both_forms_of_every_backbone(tmp_path):
    config = ExportGraphBenchConfig(n_items=300, dim=16, max_len=8, num_layers=2, num_heads=2, history_len=5,
                                    batches=[1, 3], rounds=2, calls=2, results_dir=tmp_path, tag="-test")  # fmt: skip
    path = bench_export_graph(config)
    runs = json.loads(path.read_text())["runs"]
    cells = {(r["backbone"], r["config"]["encoder_graph"], r["config"]["batch"]) for r in runs}
    assert cells == {(b, g, n) for b in ("sasrec", "bert4rec", "gru4rec") for g in ("all-positions", "final-position")
                     for n in (1, 3)}  # fmt: skip
    assert all(r["metrics"]["max_abs_diff"] < 1e-5 and r["metrics"]["p50_ms"] > 0 for r in runs)
    assert sum(line.startswith("| bert4rec | encoder |") for line in render(path).splitlines()) == 2
