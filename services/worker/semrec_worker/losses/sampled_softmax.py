"""Sampled softmax with N shared negatives (Jean et al. 2015; Bengio & Senecal 2008), for large catalogues.

For each position the target t competes with N negatives j_1..j_N drawn once per batch from a proposal
q (uniform over items, or proportional to training popularity), with the log-q correction so that the
estimate stays consistent with the full softmax:

    o_i = h_s . e_i - log q(i)
    L   = - mean_{(s, t)} [ o_t - log( exp(o_t) + sum_{k: j_k != t} exp(o_{j_k}) ) ]

With the learned history bias (`history`, losses/base.py) o_i gains b [i in H_s].
Negatives equal to the position's own target ("accidental hits") are masked out. With the uniform
proposal log q is a constant and cancels. Cost O(N_pos * N * d) instead of O(N_pos * |I| * d).

Inputs: hidden [N, d], targets [N] (1..n_items), items [n_items + 1, d]; popularity counts (length
n_items + 1) for the popularity proposal.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from semrec_worker.losses.base import HistoryShift, Reduction, SeqRecLoss, reduce, uniform_items


class SampledSoftmaxLoss(SeqRecLoss):
    name = "sampled_softmax"
    similarity = "dot"

    def __init__(
        self,
        n_negatives: int = 256,
        sampler: Literal["uniform", "popularity"] = "uniform",
        popularity: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        if n_negatives < 1:
            raise ValueError("n_negatives must be >= 1")
        self.n_negatives = n_negatives
        self.sampler = sampler
        if sampler == "popularity":
            if popularity is None:
                raise ValueError("the popularity sampler needs item counts")
            probs = torch.as_tensor(popularity, dtype=torch.float64).clone()
            probs[0] = 0.0
            probs[1:] += 1.0  # add-one smoothing: items unseen in training can still be drawn
            self.register_buffer("probs", (probs / probs.sum()).float(), persistent=False)

    def draw(self, n_items: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
        if self.sampler == "uniform":
            return uniform_items(self.n_negatives, n_items, device, generator)
        return torch.multinomial(self.probs.to(device), self.n_negatives, replacement=True, generator=generator)

    def forward(
        self,
        hidden: torch.Tensor,
        targets: torch.Tensor,
        items: torch.Tensor,
        generator: torch.Generator | None = None,
        reduction: Reduction = "mean",
        history: HistoryShift | None = None,
    ) -> torch.Tensor:
        negatives = self.draw(items.shape[0] - 1, hidden.device, generator)
        positive = (hidden * items[targets]).sum(-1, keepdim=True)
        negative = hidden @ items[negatives].T
        if history is not None:
            positive = positive + history.at(targets.unsqueeze(1))
            negative = negative + history.at(negatives)
        if self.sampler == "popularity":
            log_q = self.probs.to(hidden.device).log()
            positive = positive - log_q[targets].unsqueeze(1)
            negative = negative - log_q[negatives].unsqueeze(0)
        negative = negative.masked_fill(negatives.unsqueeze(0) == targets.unsqueeze(1), float("-inf"))
        logits = torch.cat([positive, negative], dim=1)
        zeros = torch.zeros(len(targets), dtype=torch.long, device=hidden.device)
        return reduce(nn.functional.cross_entropy(logits, zeros, reduction="none"), reduction)
