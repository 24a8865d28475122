"""Binary cross-entropy with one negative per positive: the original SASRec loss (Kang & McAuley 2018,
eq. 5), also the training protocol of LLMEmb.

    L = - mean_{(s, t)} [ log sigma(h_s . e_t) + log(1 - sigma(h_s . e_j)) ],   j ~ Uniform(I), j != t

With the learned history bias (`history`, losses/base.py) both scores gain b [i in H_s].
One uniform negative is drawn per position; a draw equal to the target is redrawn once and, if it
still collides, shifted to the next item index. Cheap but a weak signal: it optimises a pointwise
score, not the ranking, which is why full cross-entropy usually beats it (Klenitskiy & Vasilev 2023).

Inputs: hidden [N, d], targets [N] (1..n_items), items [n_items + 1, d].
"""

from __future__ import annotations

import torch
from torch import nn

from semrec_worker.losses.base import HistoryShift, Reduction, SeqRecLoss, reduce, uniform_items


class BinaryCrossEntropyLoss(SeqRecLoss):
    name = "bce"
    similarity = "dot"

    def forward(
        self,
        hidden: torch.Tensor,
        targets: torch.Tensor,
        items: torch.Tensor,
        generator: torch.Generator | None = None,
        reduction: Reduction = "mean",
        history: HistoryShift | None = None,
    ) -> torch.Tensor:
        n_items = items.shape[0] - 1
        negatives = uniform_items(len(targets), n_items, hidden.device, generator)
        clash = negatives == targets
        negatives[clash] = uniform_items(int(clash.sum()), n_items, hidden.device, generator)
        clash = negatives == targets
        negatives[clash] = negatives[clash] % n_items + 1
        positive = (hidden * items[targets]).sum(-1)
        negative = (hidden * items[negatives]).sum(-1)
        if history is not None:
            positive = positive + history.at(targets.unsqueeze(1)).squeeze(1)
            negative = negative + history.at(negatives.unsqueeze(1)).squeeze(1)
        loss = nn.functional.softplus(-positive) + nn.functional.softplus(negative)
        return reduce(loss, reduction)
