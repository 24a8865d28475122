"""Training losses for sequential recommenders: one module per loss, the formula in its docstring.

| name | module | scoring at inference |
|---|---|---|
| `said_cosine` | SAID eq. 9, softmax over cosine / temperature | cosine |
| `full_ce` | softmax cross-entropy over all items | dot |
| `sampled_softmax` | softmax over the target + N sampled negatives (log-q corrected) | dot |
| `bce` | binary cross-entropy, one negative (original SASRec) | dot |
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from semrec_worker.core.names import LOSS_NAMES, LossName
from semrec_worker.losses.base import HistoryShift, SeqRecLoss, scores
from semrec_worker.losses.bce import BinaryCrossEntropyLoss
from semrec_worker.losses.full_ce import FullCrossEntropyLoss
from semrec_worker.losses.said_cosine import SaidCosineLoss
from semrec_worker.losses.sampled_softmax import SampledSoftmaxLoss

LOSSES: dict[str, type[SeqRecLoss]] = {
    "said_cosine": SaidCosineLoss,
    "full_ce": FullCrossEntropyLoss,
    "sampled_softmax": SampledSoftmaxLoss,
    "bce": BinaryCrossEntropyLoss,
}
assert tuple(LOSSES) == LOSS_NAMES, "core.names.LossName lists every loss"


def build_loss(
    name: str,
    temperature: float = 0.07,
    n_negatives: int = 256,
    negative_sampler: Literal["uniform", "popularity"] = "uniform",
    popularity: np.ndarray | None = None,
) -> SeqRecLoss:
    if name == "said_cosine":
        return SaidCosineLoss(temperature)
    if name == "sampled_softmax":
        return SampledSoftmaxLoss(n_negatives, negative_sampler, popularity)
    if name in LOSSES:
        return LOSSES[name]()
    raise ValueError(f"unknown loss {name!r} (choose from {', '.join(LOSSES)})")


__all__ = [
    "LOSSES",
    "BinaryCrossEntropyLoss",
    "FullCrossEntropyLoss",
    "HistoryShift",
    "LossName",
    "SaidCosineLoss",
    "SampledSoftmaxLoss",
    "SeqRecLoss",
    "build_loss",
    "scores",
]
