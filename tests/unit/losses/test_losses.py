"""Each loss matches its documented formula on small hand-checkable tensors."""

import math

import numpy as np
import pytest
import torch
from semrec_worker.losses import build_loss, scores
from semrec_worker.losses.bce import BinaryCrossEntropyLoss
from semrec_worker.losses.full_ce import FullCrossEntropyLoss
from semrec_worker.losses.said_cosine import SaidCosineLoss
from semrec_worker.losses.sampled_softmax import SampledSoftmaxLoss


@pytest.fixture
def inputs():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(5, 4, generator=g)
    items = torch.randn(7, 4, generator=g)  # 6 items + padding row 0
    targets = torch.tensor([1, 2, 3, 6, 6])
    return hidden, targets, items


def manual_softmax_nll(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """-log softmax over columns 1..n (column 0 is padding), by hand."""
    total = 0.0
    for row, t in zip(logits.tolist(), targets.tolist(), strict=True):
        denom = sum(math.exp(v) for v in row[1:])
        total += -(row[t] - math.log(denom))
    return total / len(targets)


def test_full_ce_is_softmax_over_all_items_without_padding(inputs):
    hidden, targets, items = inputs
    loss = FullCrossEntropyLoss()(hidden, targets, items)
    assert loss.item() == pytest.approx(manual_softmax_nll(hidden @ items.T, targets), rel=1e-5)


def test_said_cosine_uses_cosine_over_temperature(inputs):
    hidden, targets, items = inputs
    tau = 0.1
    cosine = torch.nn.functional.normalize(hidden, dim=1) @ torch.nn.functional.normalize(items, dim=1).T
    loss = SaidCosineLoss(tau)(hidden, targets, items)
    assert loss.item() == pytest.approx(manual_softmax_nll(cosine / tau, targets), rel=1e-5)
    # cosine: scaling sequence or item vectors changes nothing
    assert SaidCosineLoss(tau)(3 * hidden, targets, 0.5 * items).item() == pytest.approx(loss.item(), rel=1e-5)


def test_reduction_sum_is_mean_times_count(inputs):
    hidden, targets, items = inputs
    for name in ("said_cosine", "full_ce"):
        fn = build_loss(name)
        mean = fn(hidden, targets, items)
        total = fn(hidden, targets, items, reduction="sum")
        assert total.item() == pytest.approx(mean.item() * len(targets), rel=1e-5)


def test_sampled_softmax_masks_accidental_hits_and_matches_formula(inputs):
    hidden, targets, items = inputs
    fn = SampledSoftmaxLoss(n_negatives=20)
    loss = fn(hidden, targets, items, torch.Generator().manual_seed(3))
    negatives = fn.draw(6, hidden.device, torch.Generator().manual_seed(3))
    expected = 0.0
    for h, t in zip(hidden, targets.tolist(), strict=True):
        pos = float(h @ items[t])
        negs = [float(h @ items[j]) for j in negatives.tolist() if j != t]
        expected += -(pos - math.log(math.exp(pos) + sum(math.exp(v) for v in negs)))
    assert loss.item() == pytest.approx(expected / len(targets), rel=1e-5)
    # a one-item catalogue: every negative is the target itself, so nothing competes and the loss is 0
    one = SampledSoftmaxLoss(n_negatives=5)(hidden[:2], torch.tensor([1, 1]), items[:2])
    assert one.item() == pytest.approx(0.0, abs=1e-6)


def test_sampled_softmax_popularity_proposal_is_log_q_corrected(inputs):
    hidden, targets, items = inputs
    counts = np.array([0, 50, 10, 5, 0, 1, 3])
    fn = SampledSoftmaxLoss(n_negatives=30, sampler="popularity", popularity=counts)
    q = (counts[1:] + 1) / (counts[1:] + 1).sum()
    assert fn.probs[0] == 0 and np.allclose(fn.probs[1:].numpy(), q, atol=1e-6)
    loss = fn(hidden, targets, items, torch.Generator().manual_seed(1))
    negatives = fn.draw(6, hidden.device, torch.Generator().manual_seed(1)).tolist()
    expected = 0.0
    for h, t in zip(hidden, targets.tolist(), strict=True):
        pos = float(h @ items[t]) - math.log(q[t - 1])
        negs = [float(h @ items[j]) - math.log(q[j - 1]) for j in negatives if j != t]
        expected += -(pos - math.log(math.exp(pos) + sum(math.exp(v) for v in negs)))
    assert loss.item() == pytest.approx(expected / len(targets), rel=1e-4)


def test_bce_one_negative_never_the_target(inputs):
    hidden, targets, items = inputs
    loss = BinaryCrossEntropyLoss()(hidden, targets, items, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and loss.item() > 0
    # with two items the negative must be the other one: the loss is exact
    two = items[:3]
    t = torch.tensor([1, 2])
    h = hidden[:2]
    got = BinaryCrossEntropyLoss()(h, t, two, torch.Generator().manual_seed(0)).item()
    other = torch.tensor([2, 1])
    pos, neg = (h * two[t]).sum(1), (h * two[other]).sum(1)
    expected = (-torch.log(torch.sigmoid(pos)) - torch.log(1 - torch.sigmoid(neg))).mean().item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_scores_exclude_padding_and_follow_similarity(inputs):
    hidden, _, items = inputs
    dot = scores(hidden, items, "dot")
    cos = scores(hidden, items, "cosine")
    assert torch.isinf(dot[:, 0]).all() and torch.isinf(cos[:, 0]).all()
    assert torch.allclose(dot[:, 1:], hidden @ items[1:].T)
    assert cos[:, 1:].abs().max() <= 1 + 1e-6


def test_losses_have_gradients_and_unknown_name_fails(inputs):
    hidden, targets, items = inputs
    for name in ("said_cosine", "full_ce", "sampled_softmax", "bce"):
        h = hidden.clone().requires_grad_()
        build_loss(name)(h, targets, items, torch.Generator().manual_seed(0)).backward()
        assert torch.isfinite(h.grad).all() and h.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        build_loss("hinge")
