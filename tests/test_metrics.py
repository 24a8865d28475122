"""Metrics and ranks against values computed by hand, ties included."""

import math

import numpy as np
import pytest
import torch
from semrec_worker.evaluation.metrics import metrics_from_ranks, ranks_from_scores


def test_rank_counts_strictly_better_items():
    scores = torch.tensor([[0.0, 0.9, 0.5, 0.1, 0.7]])
    # target column 2 (0.5): columns 1 (0.9) and 4 (0.7) are ahead -> rank 2
    assert ranks_from_scores(scores, torch.tensor([2])).tolist() == [2]
    assert ranks_from_scores(scores, torch.tensor([1])).tolist() == [0]


def test_ties_are_ranked_pessimistically():
    scores = torch.tensor([[0.0, 0.5, 0.5, 0.5, 0.1]])
    # target 2 ties with 1 and 3: both go ahead of it -> rank 2
    assert ranks_from_scores(scores, torch.tensor([2])).tolist() == [2]
    constant = torch.zeros(1, 6)
    assert ranks_from_scores(constant, torch.tensor([3])).tolist() == [5]


def test_invalid_columns_never_count():
    scores = torch.tensor([[9.0, 0.9, 0.5, 0.8]])
    valid = torch.tensor([[False, False, True, True]])
    assert ranks_from_scores(scores, torch.tensor([2]), valid).tolist() == [1]


def test_metric_values_by_hand():
    ranks = np.array([0, 1, 9, 10, 25])
    m = metrics_from_ranks(ranks)
    ndcg10 = (1 + 1 / math.log2(3) + 1 / math.log2(11)) / 5
    ndcg20 = (1 + 1 / math.log2(3) + 1 / math.log2(11) + 1 / math.log2(12)) / 5
    assert m["ndcg@10"] == pytest.approx(ndcg10)
    assert m["recall@10"] == pytest.approx(3 / 5)
    assert m["ndcg@20"] == pytest.approx(ndcg20)
    assert m["recall@20"] == pytest.approx(4 / 5)
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 10 + 1 / 11 + 1 / 26) / 5)
    assert list(m) == ["ndcg@10", "recall@10", "mrr", "ndcg@20", "recall@20"]


def test_ndcg_equals_recall_only_when_every_hit_is_at_rank_one():
    assert metrics_from_ranks(np.array([0, 0, 50]))["ndcg@10"] == pytest.approx(2 / 3)
    m = metrics_from_ranks(np.array([3, 3, 50]))
    assert m["ndcg@10"] < m["recall@10"]
