"""Results files follow one schema; the popularity baseline is evaluated end to end."""

import json

import numpy as np
from semrec.results import ResultsFile, read_results
from semrec_worker.commands.evaluate import EvalPopularityConfig, eval_popularity
from semrec_worker.models.popularity import PopularityRecommender


def test_popularity_results_file(tmp_path, tiny_synthetic):
    out = tmp_path / "pop.json"
    runs = eval_popularity(EvalPopularityConfig(data="synthetic:users=300,items=200,avg_len=10,seed=1", results=out))
    doc = read_results(out)
    assert isinstance(doc, ResultsFile) and len(doc.runs) == 2
    assert {r.protocol for r in doc.runs} == {"full", "sampled100"}
    raw = json.loads(out.read_text())
    assert set(raw) == {"commit", "machine", "created_at", "runs"}
    for run in runs:
        assert set(run.metrics) == {"ndcg@10", "recall@10", "mrr", "ndcg@20", "recall@20"}
        assert run.head and run.tail and run.method == "popularity"
    full = next(r for r in runs if r.protocol == "full")
    sampled = next(r for r in runs if r.protocol == "sampled100")
    assert sampled.metrics["recall@10"] > full.metrics["recall@10"]  # 101 candidates vs all items
    # popular items are head: popularity does far better on head targets than on tail ones
    assert full.head["recall@10"] > full.tail["recall@10"]


def test_popularity_scores_are_training_counts(tiny_synthetic):
    model = PopularityRecommender.fit(tiny_synthetic, "test")
    scores = model.score([np.array([1])])
    counts = np.zeros(tiny_synthetic.n_items + 1)
    for s in tiny_synthetic.sequences:
        np.add.at(counts, s[:-1], 1)
    assert np.allclose(scores[0].numpy(), counts)
