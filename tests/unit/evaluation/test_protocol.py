"""The shared evaluation protocol on a dataset small enough to check by hand."""

import math

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
    # a model with no opinion (all scores equal) gets the worst rank: every negative ties, pessimistically ahead
    constant = FixedScores([0.0] * 301)
    ev = evaluate(constant, ds, "test", EvalSettings(protocol="sampled100", eval_seed=3))
    assert (ev.ranks == 100).all()


class Oracle:
    """Knows each test case's target (by its history) and scores it above everything else."""

    def __init__(self, dataset, n_items):
        histories, targets = dataset.split("test")
        self.target_of = {tuple(h.tolist()): int(t) for h, t in zip(histories, targets, strict=True)}
        self.n_items = n_items

    def score(self, histories):
        out = torch.zeros(len(histories), self.n_items + 1)
        for row, h in enumerate(histories):
            out[row, self.target_of[tuple(h.tolist())]] = 1.0
        return out


def test_sampled_protocol_ranks_a_model_that_actually_ranks():
    rng = np.random.default_rng(1)
    seqs = [rng.choice(np.arange(1, 301), size=8, replace=False).tolist() for _ in range(15)]
    ds = make_dataset(seqs, n_items=300)
    settings = EvalSettings(protocol="sampled100", eval_seed=5)
    assert (evaluate(Oracle(ds, 300), ds, "test", settings).ranks == 0).all()
    # item j scores j: the target's rank is the number of its 100 sampled negatives with a larger index
    from semrec_worker.evaluation.protocol import _sampled_candidates

    _, targets = ds.split("test")
    candidates = _sampled_candidates(ds, targets, 100, seed=5)
    expected = [int((row[1:] > row[0]).sum()) for row in candidates]
    assert len(set(expected)) > 3  # the ranks really vary across users
    ev = evaluate(FixedScores(list(range(301))), ds, "test", settings)
    assert ev.ranks.tolist() == expected
    assert ev.metrics["recall@10"] == pytest.approx(np.mean(np.array(expected) < 10))
    # the full protocol ranks against all 300 items instead: #items with a larger index (history included)
    full = evaluate(FixedScores(list(range(301))), ds, "test")
    assert full.ranks.tolist() == [300 - int(t) for t in targets]


def test_head_tail_split_uses_training_popularity():
    ds = make_dataset([[1, 1, 1, 2, 3], [1, 2, 4, 5, 3], [1, 2, 2, 5, 4]], n_items=5)
    head = head_items(ds, 0.2)
    assert head.tolist() == [False, True, False, False, False, False]  # item 1 is the most popular
    ev = evaluate(FixedScores([0, 5, 4, 3, 2, 1]), ds, "test")
    assert ev.head == {} and set(ev.tail) >= {"ndcg@10"}  # no test target is item 1


def test_head_tail_with_a_non_empty_head_by_hand():
    # training parts (all but the last two items): [1, 1, 2], [1, 2, 3], [1, 4, 5], [5]
    # -> counts 1: 4, 2: 2, 5: 2, 3: 1, 4: 1; head = the top ceil(0.2 * 9) = 2 items = {1, 2} (2 before 5 on a tie)
    ds = make_dataset([[1, 1, 2, 9, 1], [1, 2, 3, 9, 4], [1, 4, 5, 9, 2], [5, 9, 3]], n_items=9)
    assert np.flatnonzero(head_items(ds, 0.2)).tolist() == [1, 2]
    # item scores: 2 > 3 > 4 > 5 > 6 > 7 > 8 > 9 > 1; test targets 1, 4, 2, 3 -> ranks 8, 2, 0, 1
    ev = evaluate(FixedScores([0, 1, 9, 8, 7, 6, 5, 4, 3, 2]), ds, "test")
    assert ev.ranks.tolist() == [8, 2, 0, 1]
    assert ev.head["mrr"] == pytest.approx((1 / 9 + 1) / 2)  # targets 1 and 2
    assert ev.tail["mrr"] == pytest.approx((1 / 3 + 1 / 2) / 2)  # targets 4 and 3
    assert ev.head["ndcg@10"] == pytest.approx((1 / math.log2(10) + 1) / 2)
    assert ev.tail["recall@10"] == 1.0


def test_users_with_fewer_than_three_interactions_are_dropped():
    from semrec_worker.data.dataset import DataConfig, build_dataset
    from semrec_worker.data.records import RawInteractions

    rows = [("one", "a", 1), ("two", "a", 1), ("two", "b", 2), ("three", "a", 1), ("three", "b", 2),
            ("three", "c", 3), ("four", "c", 1), ("four", "b", 2), ("four", "a", 3), ("four", "d", 4)]  # fmt: skip
    raw = RawInteractions(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                          np.array([float(r[2]) for r in rows]))  # fmt: skip
    items = {x: Item(x) for x in "abcd"}
    ds = build_dataset("toy", raw, items, DataConfig(data="toy", kcore=0))
    assert sorted(ds.user_ids) == ["four", "three"]
    assert sorted(len(s) for s in ds.sequences) == [3, 4]
    # every kept user has a training item, a validation target and a test target
    assert all(len(h) >= 1 for h in ds.train_sequences())


def test_training_never_sees_validation_or_test_targets(tmp_path, monkeypatch):
    """Each user's last two items appear nowhere else, so any leak into training would show up."""
    from semrec_worker.training import SeqRecConfig, train_seqrec
    from semrec_worker.training import trainer as trainer_module

    n_users, shared = 30, 10
    seqs = [
        [1 + (u + k) % shared for k in range(5)] + [shared + 1 + 2 * u, shared + 2 + 2 * u]
        for u in range(n_users)
    ]
    ds = make_dataset(seqs, n_items=shared + 2 * n_users)
    held_out = {shared + 1 + 2 * u for u in range(n_users)} | {shared + 2 + 2 * u for u in range(n_users)}
    assert ds.item_counts("train")[sorted(held_out)].sum() == 0
    seen: list[torch.Tensor] = []
    real = trainer_module.WindowBatches

    class Recording(real):
        def epoch(self, *args, **kwargs):
            for batch in super().epoch(*args, **kwargs):
                seen.append(batch.windows.clone())
                yield batch

    monkeypatch.setattr(trainer_module, "WindowBatches", Recording)
    config = SeqRecConfig(data="toy", out=tmp_path / "run", backbone="sasrec", loss="full_ce", epochs=1, dim=8,
                          max_len=6, batch_size=8, threads=1)  # fmt: skip
    train_seqrec(config, dataset=ds)
    trained_on = set(torch.cat([w.flatten() for w in seen]).tolist()) - {0}
    assert trained_on == set(range(1, shared + 1))  # every training item, and nothing held out
