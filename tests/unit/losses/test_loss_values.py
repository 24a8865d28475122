"""Every training loss against a value computed independently in the test, with the default settings.

Each expectation is written from the paper's formula with plain Python / torch primitives (log-sum-exp by
hand, a separate LM forward per caption), never with the function under test, so a loss that scales by the
temperature the wrong way, ignores the instruction's length or flips a sign gives another number.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from semrec_worker.losses import build_loss
from semrec_worker.methods.llmemb.model import CollaborativeAlignment
from semrec_worker.methods.symmetric_infonce import SymmetricInfoNCE
from semrec_worker.methods.tslrec.model import sft_loss


def log_softmax_at(row: list[float], index: int) -> float:
    top = max(row)
    return row[index] - (top + math.log(sum(math.exp(v - top) for v in row)))


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


HIDDEN = [[1.0, 0.0], [0.5, -1.0], [0.0, 2.0]]
ITEMS = [[9.0, 9.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]]  # row 0 is padding, never a candidate
TARGETS = [1, 3, 2]


def tensors():
    return torch.tensor(HIDDEN), torch.tensor(TARGETS), torch.tensor(ITEMS)


def test_said_cosine_default_temperature_by_hand():
    """SAID eq. 9 with its default tau = 0.07: softmax over cos / tau, padding excluded."""
    loss = build_loss("said_cosine")(*tensors()).item()
    expected = 0.0
    for h, t in zip(HIDDEN, TARGETS, strict=True):
        logits = [cosine(h, e) / 0.07 for e in ITEMS[1:]]
        expected -= log_softmax_at(logits, t - 1)
    assert loss == pytest.approx(expected / 3, rel=1e-5)


def test_full_ce_by_hand():
    loss = build_loss("full_ce")(*tensors()).item()
    expected = 0.0
    for h, t in zip(HIDDEN, TARGETS, strict=True):
        logits = [sum(x * y for x, y in zip(h, e, strict=True)) for e in ITEMS[1:]]
        expected -= log_softmax_at(logits, t - 1)
    assert loss == pytest.approx(expected / 3, rel=1e-6)
    # a worked number: row 0 scores items 1..4 with 1, 0, 1, -1 and its target is item 1
    assert -log_softmax_at([1.0, 0.0, 1.0, -1.0], 0) == pytest.approx(
        math.log(2 * math.e + 1 + math.exp(-1)) - 1, rel=1e-12
    )


def test_sampled_softmax_popularity_log_q_by_hand():
    """o_i = h.e_i - log q(i), q = (count + 1) / sum, accidental hits masked, default N = 256 draws."""
    counts = np.array([0, 7, 0, 2, 0])
    fn = build_loss("sampled_softmax", negative_sampler="popularity", popularity=counts)
    assert fn.n_negatives == 256
    q = [(c + 1) / (counts[1:] + 1).sum() for c in counts[1:]]
    loss = fn(*tensors(), generator=torch.Generator().manual_seed(5)).item()
    drawn = torch.multinomial(torch.tensor([0.0, *q]), 256, replacement=True,
                              generator=torch.Generator().manual_seed(5)).tolist()  # fmt: skip
    expected = 0.0
    for h, t in zip(HIDDEN, TARGETS, strict=True):
        logit = [
            sum(x * y for x, y in zip(h, e, strict=True)) - math.log(q[i - 1]) for i, e in enumerate(ITEMS)
        ]
        row = [logit[t]] + [logit[j] for j in drawn if j != t]
        expected -= log_softmax_at(row, 0)
    assert loss == pytest.approx(expected / 3, rel=1e-5)


def test_sampled_softmax_uniform_is_unbiased_without_correction():
    fn = build_loss("sampled_softmax")
    loss = fn(*tensors(), generator=torch.Generator().manual_seed(2)).item()
    drawn = torch.randint(1, 5, (256,), generator=torch.Generator().manual_seed(2)).tolist()
    expected = 0.0
    for h, t in zip(HIDDEN, TARGETS, strict=True):
        logit = [sum(x * y for x, y in zip(h, e, strict=True)) for e in ITEMS]
        expected -= log_softmax_at([logit[t]] + [logit[j] for j in drawn if j != t], 0)
    assert loss == pytest.approx(expected / 3, rel=1e-5)


def test_bce_by_hand():
    """SASRec eq. 5: -log sigma(h.e_t) - log(1 - sigma(h.e_j)), j the (redrawn) uniform negative."""
    hidden, targets, items = tensors()
    loss = build_loss("bce")(hidden, targets, items, torch.Generator().manual_seed(4)).item()
    g = torch.Generator().manual_seed(4)
    negatives = torch.randint(1, 5, (3,), generator=g)
    clash = negatives == targets
    negatives[clash] = torch.randint(1, 5, (int(clash.sum()),), generator=g)
    negatives = [n if n != t else n % 4 + 1 for n, t in zip(negatives.tolist(), TARGETS, strict=True)]
    expected = 0.0
    for h, t, j in zip(HIDDEN, TARGETS, negatives, strict=True):
        pos = sum(x * y for x, y in zip(h, ITEMS[t], strict=True))
        neg = sum(x * y for x, y in zip(h, ITEMS[j], strict=True))
        expected += -math.log(1 / (1 + math.exp(-pos))) - math.log(1 - 1 / (1 + math.exp(-neg)))
    assert loss == pytest.approx(expected / 3, rel=1e-5)


X = [[1.0, 0.0], [0.6, 0.8], [-1.0, 1.0]]
Y = [[0.9, 0.1], [0.0, 1.0], [-2.0, 1.0]]


def symmetric_infonce_by_hand(x, y, tau: float, similarity) -> float:
    n = len(x)
    s = [[similarity(a, b) / tau for b in y] for a in x]
    rows = sum(-log_softmax_at(s[i], i) for i in range(n))
    cols = sum(-log_softmax_at([s[j][i] for j in range(n)], i) for i in range(n))
    return (rows + cols) / (2 * n)


def test_symmetric_infonce_default_temperature_by_hand():
    """LLMEmb SCFT eq. 5 (and RAT eq. 7) with the default tau = 0.05 and cosine similarity."""
    loss = SymmetricInfoNCE()(torch.tensor(X), torch.tensor(Y)).item()
    assert loss == pytest.approx(symmetric_infonce_by_hand(X, Y, 0.05, cosine), rel=1e-5)
    learnable = SymmetricInfoNCE(0.3, learnable=True)(torch.tensor(X), torch.tensor(Y)).item()
    assert learnable == pytest.approx(symmetric_infonce_by_hand(X, Y, 0.3, cosine), rel=1e-5)


def test_symmetric_infonce_clips_the_inverse_temperature_at_100():
    loss = SymmetricInfoNCE(0.001)(torch.tensor(X), torch.tensor(Y)).item()
    assert loss == pytest.approx(symmetric_infonce_by_hand(X, Y, 0.01, cosine), rel=1e-3)  # float32 near 0


def infonce_without_positive_by_hand(x, y, tau: float, similarity, ids) -> float:
    """Eq. 4 / eq. 7, one direction each, summed: the positive and the other rows of its id out of the denominator."""
    n = len(x)
    s = [[similarity(a, b) / tau for b in y] for a in x]
    rows = sum(-s[i][i] + math.log(sum(math.exp(s[i][k]) for k in range(n) if ids[k] != ids[i])) for i in range(n))
    cols = sum(-s[i][i] + math.log(sum(math.exp(s[k][i]) for k in range(n) if ids[k] != ids[i])) for i in range(n))
    return rows / n + cols / n


def dot(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_symmetric_infonce_without_the_positive_in_the_denominator_by_hand():
    """SCFT eq. 4: sim = inner product, I[i != k] takes the positive out (half of eq. 5's sum of directions)."""
    loss = SymmetricInfoNCE(0.5, similarity="dot", exclude_positive=True)(torch.tensor(X), torch.tensor(Y)).item()
    assert loss == pytest.approx(0.5 * infonce_without_positive_by_hand(X, Y, 0.5, dot, [0, 1, 2]), rel=1e-5)
    assert loss != pytest.approx(symmetric_infonce_by_hand(X, Y, 0.5, dot), rel=1e-3)  # not the plain InfoNCE


@pytest.mark.parametrize("exclude_positive", [True, False])
@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_symmetric_infonce_grouped_equals_the_loss_on_repeated_rows(exclude_positive, similarity):
    """`grouped` on distinct rows with multiplicities is `forward(same=ids)` on the rows repeated: value and
    gradients (what RAT's alignment relies on to skip the S x S matrix)."""
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(5, 4, generator=generator, requires_grad=True)
    y = torch.randn(5, 4, generator=generator, requires_grad=True)
    counts = torch.tensor([3, 1, 2, 4, 1])
    ids = torch.repeat_interleave(torch.arange(5), counts)
    loss_fn = SymmetricInfoNCE(0.7, similarity=similarity, exclude_positive=exclude_positive)
    repeated = loss_fn(x[ids], y[ids], same=ids)
    grads = torch.autograd.grad(repeated, (x, y))
    grouped = loss_fn.grouped(x, y, counts)
    grouped_grads = torch.autograd.grad(grouped, (x, y))
    assert grouped.item() == pytest.approx(repeated.item(), rel=1e-5)
    for got, want in zip(grouped_grads, grads, strict=True):
        assert torch.allclose(got, want, atol=1e-6)
    plain = loss_fn.grouped(x, y, torch.ones(5, dtype=torch.long))
    assert plain.item() != pytest.approx(grouped.item(), rel=1e-3)  # the counts matter


def test_rat_collaborative_alignment_by_hand():
    """RAT eqs. 7-8: alpha * (L^1 + L^2) over dot products / gamma (defaults 0.01 and 2.0) at every target
    position (item 3 twice), the positive and the other position of the same item out of each denominator."""
    adapted = [[0.0, 0.0], [1.0, 2.0], [0.5, -1.0], [2.0, 0.0]]
    pretrained = [[0.0, 0.0], [1.5, 1.0], [0.0, -1.0], [1.0, 1.0]]
    align = CollaborativeAlignment(np.array(pretrained))
    value = align(items=torch.tensor(adapted), targets=torch.tensor([0, 3, 1, 3, 2])).item()
    positions = [3, 1, 3, 2]
    x, y = [adapted[p] for p in positions], [pretrained[p] for p in positions]
    assert value == pytest.approx(0.01 * infonce_without_positive_by_hand(x, y, 2.0, dot, positions), rel=1e-5)
    distinct = 0.01 * infonce_without_positive_by_hand(
        [adapted[p] for p in (3, 1, 2)], [pretrained[p] for p in (3, 1, 2)], 2.0, dot, [3, 1, 2])
    assert value != pytest.approx(distinct, rel=1e-3)  # every position counts, not each item once


def test_tslrec_sft_loss_by_hand():
    """(T3): || p_u - y_u ||^2 summed over groups, averaged over users."""
    predicted = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    target = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    first = 0.5**2 + 0.3**2 + 0.2**2
    second = 0.1**2 + 0.4**2 + 0.3**2
    assert sft_loss(predicted, target).item() == pytest.approx((first + second) / 2, rel=1e-6)


@pytest.fixture(scope="module")
def tiny_lm():
    from semrec_worker.lm import load_language_model

    return load_language_model("tiny")


def caption_nll_by_hand(lm, instruction_ids, prefix, captions) -> float:
    """-mean log p(t_j | instruction, prefix, t_<j) over all caption tokens, one unpadded LM forward per item."""
    embed = lm.get_input_embeddings()
    total, count = 0.0, 0
    for row, ids in enumerate(captions):
        inputs = torch.cat([embed(torch.tensor(instruction_ids)), prefix[row], embed(torch.tensor(ids[:-1]))])
        logits = lm(inputs_embeds=inputs.unsqueeze(0)).logits[0].double()
        offset = len(instruction_ids) + prefix.shape[1]
        for j, token in enumerate(ids):
            total -= float(torch.log_softmax(logits[offset + j - 1], -1)[token])
            count += 1
    return total / count


def test_said_caption_loss_with_the_default_instruction_and_a_real_prefix(tiny_lm):
    """SAID eq. 3 through the trainer, default "Item:" instruction, K = 4 non-zero prefix vectors."""
    from semrec_worker.data import DataConfig, load_dataset
    from semrec_worker.methods.said import model as said
    from semrec_worker.methods.said.settings import TrainSAIDConfig
    from semrec_worker.methods.said.trainer import SAIDTrainer

    dataset = load_dataset(DataConfig(data="synthetic:users=40,items=12,avg_len=5,seed=2"))
    config = TrainSAIDConfig(data="synthetic:users=40,items=12,avg_len=5,seed=2", llm="tiny", precision="fp32",
                             projector="table", threads=1, eval_items=2, max_caption_tokens=128)  # fmt: skip
    assert config.instruction == "Item:" and config.virtual_tokens == 4
    trainer = SAIDTrainer(config, None, dataset, tiny_lm)
    instruction_ids = tiny_lm.tokenizer("Item:", add_special_tokens=False)["input_ids"]
    assert len(instruction_ids) >= 2 and trainer.instruction.shape[0] == len(instruction_ids)
    rows = np.array([5, 0, 1])
    with torch.no_grad():
        prefix = trainer.projector(torch.as_tensor(rows)).float()
    assert prefix.shape[1] == 4 and prefix.abs().sum() > 0
    captions = [trainer.captions.ids[r] for r in rows]
    assert len({len(c) for c in captions}) > 1  # unequal lengths: right padding is exercised
    expected = caption_nll_by_hand(said.freeze(tiny_lm.model), instruction_ids, prefix, captions)
    loss, _, tokens = trainer.step(rows)  # the value before this step's update
    assert tokens == sum(len(c) for c in captions)
    assert loss == pytest.approx(expected, rel=1e-4)
