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


NAN, INF = float("nan"), float("inf")


def test_a_model_that_outputs_only_nan_gets_the_worst_rank_and_zero_metrics():
    scores = torch.full((3, 6), NAN)
    ranks = ranks_from_scores(scores, torch.tensor([0, 2, 5]))
    assert ranks.tolist() == [5, 5, 5]
    m = metrics_from_ranks(ranks.numpy())
    assert m["ndcg@10"] == pytest.approx(1 / math.log2(7))  # rank 5 of 6 is still inside the top 10
    valid = torch.ones(3, 6, dtype=torch.bool)
    valid[:, 0] = False
    assert ranks_from_scores(scores, torch.tensor([1, 2, 5]), valid).tolist() == [4, 4, 4]
    big = torch.full((2, 50), NAN)
    assert metrics_from_ranks(ranks_from_scores(big, torch.tensor([3, 7])).numpy())["recall@10"] == 0.0


def test_nan_is_below_every_number_and_minus_infinity():
    scores = torch.tensor([[0.2, NAN, 0.9, -INF, NAN, 0.5]])
    # a NaN competitor never goes ahead of a real score
    assert ranks_from_scores(scores, torch.tensor([0])).tolist() == [2]  # 0.9 and 0.5 are ahead
    assert ranks_from_scores(scores, torch.tensor([2])).tolist() == [0]
    # -inf is behind every number but ahead of NaN
    assert ranks_from_scores(scores, torch.tensor([3])).tolist() == [3]
    # a NaN target: every other candidate is ahead, the other NaN by the pessimistic-ties rule
    assert ranks_from_scores(scores, torch.tensor([1])).tolist() == [5]
    assert ranks_from_scores(scores, torch.tensor([4])).tolist() == [5]


def test_infinite_scores_follow_the_tie_rule():
    scores = torch.tensor([[INF, 1.0, INF, -INF]])
    assert ranks_from_scores(scores, torch.tensor([0])).tolist() == [1]  # ties the other +inf
    assert ranks_from_scores(scores, torch.tensor([1])).tolist() == [2]
    assert ranks_from_scores(scores, torch.tensor([3])).tolist() == [3]
    # masked-out NaN columns do not count either way
    with_nan = torch.tensor([[NAN, 0.3, 0.1]])
    valid = torch.tensor([[False, True, True]])
    assert ranks_from_scores(with_nan, torch.tensor([2]), valid).tolist() == [1]


def test_float64_scores_are_ranked_in_float64():
    from semrec_worker.evaluation.metrics import ranking_dtype

    # 1 + 1e-12 and 1 are one float32 value: a float32 cast would make them a (pessimistic) tie
    scores = torch.tensor([[0.0, 1.0, 1.0 + 1e-12]], dtype=torch.float64)
    assert ranking_dtype(scores) == torch.float64
    assert ranks_from_scores(scores.to(ranking_dtype(scores)), torch.tensor([2])).tolist() == [0]
    assert ranks_from_scores(scores.float(), torch.tensor([2])).tolist() == [1]
    assert ranking_dtype(torch.zeros(1, 2, dtype=torch.float16)) == torch.float32
    assert ranking_dtype(torch.zeros(1, 2, dtype=torch.int64)) == torch.float32
