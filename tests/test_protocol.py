"""The shared evaluation protocol on a dataset small enough to check by hand."""

import numpy as np
import pytest
import torch
from semrec_worker.data.dataset import SequenceDataset
from semrec_worker.data.records import Item
from semrec_worker.evaluation import EvalSettings, evaluate
from semrec_worker.evaluation.protocol import head_items


def make_dataset(sequences, n_items):
    ids = [f"i{k}" for k in range(1, n_items + 1)]
    return SequenceDataset(
        "toy", ids, [Item(i) for i in ids], [f"u{k}" for k in range(len(sequences))],
        [np.array(s) for s in sequences],
    )  # fmt: skip


class FixedScores:
    """Scores item j as `table[j]` for every user (a fixed ranking)."""

    def __init__(self, table):
        self.table = torch.tensor(table, dtype=torch.float32)

    def score(self, histories):
        return self.table.expand(len(histories), -1)


def test_full_ranking_by_hand():
    ds = make_dataset([[1, 2, 3], [2, 3, 4], [4, 5, 1]], n_items=5)
    # ranking of items: 5 > 4 > 3 > 2 > 1
    model = FixedScores([0, 1, 2, 3, 4, 5])
    ev = evaluate(model, ds, "test")
    # test targets 3, 4, 1 -> ranks 2, 1, 4
    assert ev.ranks.tolist() == [2, 1, 4]
    assert ev.metrics["recall@10"] == 1.0
    assert ev.metrics["mrr"] == pytest.approx((1 / 3 + 1 / 2 + 1 / 5) / 3)
    # validation targets 2, 3, 5 -> ranks 3, 2, 0
    assert evaluate(model, ds, "valid").ranks.tolist() == [3, 2, 0]


def test_exclude_history_masks_seen_items_but_not_the_target():
    ds = make_dataset([[5, 4, 3], [4, 4, 4]], n_items=5)
    model = FixedScores([0, 1, 2, 3, 4, 5])
    assert evaluate(model, ds, "test").ranks.tolist() == [2, 1]
    ranks = evaluate(model, ds, "test", EvalSettings(exclude_history=True)).ranks.tolist()
    # user 0: items 5, 4 masked -> target 3 is first; user 1: target 4 repeats history and stays rankable
    assert ranks == [0, 1]


def test_sampled_protocol_draws_unseen_items_deterministically():
    rng = np.random.default_rng(0)
    seqs = [rng.choice(np.arange(1, 301), size=10, replace=False).tolist() for _ in range(20)]
    ds = make_dataset(seqs, n_items=300)
    from semrec_worker.evaluation.protocol import _sampled_candidates

    _, targets = ds.split("test")
    a = _sampled_candidates(ds, targets, 100, seed=3)
    b = _sampled_candidates(ds, targets, 100, seed=3)
    assert (a == b).all() and a.shape == (20, 101)
    for row, seq in zip(a, ds.sequences, strict=True):
        assert row[0] == seq[-1]
        assert not set(row[1:].tolist()) & set(seq.tolist())
        assert len(set(row[1:].tolist())) == 100
    # a model that ranks the target first gets rank 0 everywhere
    table = torch.zeros(301)

    class TargetFirst:
        def score(self, histories):
            out = table.expand(len(histories), -1).clone()
            return out

    ev = evaluate(TargetFirst(), ds, "test", EvalSettings(protocol="sampled100", eval_seed=3))
    assert (ev.ranks == 100).all()  # all ties, pessimistic: every negative ahead


def test_head_tail_split_uses_training_popularity():
    ds = make_dataset([[1, 1, 1, 2, 3], [1, 2, 4, 5, 3], [1, 2, 2, 5, 4]], n_items=5)
    head = head_items(ds, 0.2)
    assert head.tolist() == [False, True, False, False, False, False]  # item 1 is the most popular
    ev = evaluate(FixedScores([0, 5, 4, 3, 2, 1]), ds, "test")
    assert ev.head == {} and set(ev.tail) >= {"ndcg@10"}  # no test target is item 1
