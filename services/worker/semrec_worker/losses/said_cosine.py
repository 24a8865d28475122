"""SAID loss (Hu et al., WWW'24 companion, eq. 9): softmax over cosine similarities with a temperature.

    p(i | s) = exp(cos(h_s, e_i) / tau) / sum_{j=1..|I|} exp(cos(h_s, e_j) / tau)
    L        = - mean_{(s, t)} log p(t | s)

where h_s is the sequence representation, e_i the item embeddings (all items of the catalogue are
candidates, padding excluded), t the true next item and tau the temperature. Because both sides are
L2-normalised the model is served by a cosine top-k, exactly the bundle's scoring. Small tau (0.05-0.1)
is needed: with tau = 1 the logits live in [-1, 1] and the softmax cannot become peaked. With the model's
learned history bias (`history`, losses/base.py) the logit is (cos(h_s, e_i) + b [i in H_s]) / tau: b is in
cosine units, like the score the recommender ranks by.

Inputs: hidden [N, d], targets [N] (1..n_items), items [n_items + 1, d]. Example::

    loss = SaidCosineLoss(temperature=0.07)(hidden, targets, model.item_embedding.weight)
"""

from __future__ import annotations

import torch
from torch import nn

from semrec_worker.losses.base import HistoryShift, Reduction, SeqRecLoss, reduce


class SaidCosineLoss(SeqRecLoss):
    name = "said_cosine"
    similarity = "cosine"

    def __init__(self, temperature: float = 0.07) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        self.temperature = temperature

    def forward(
        self,
        hidden: torch.Tensor,
        targets: torch.Tensor,
        items: torch.Tensor,
        generator: torch.Generator | None = None,
        reduction: Reduction = "mean",
        history: HistoryShift | None = None,
    ) -> torch.Tensor:
        logits = nn.functional.normalize(hidden, dim=-1) @ nn.functional.normalize(items, dim=-1).T
        if history is not None:  # b is in cosine units, like the score the model is served by
            logits = history.add_to(logits)
        logits = logits / self.temperature
        logits[:, 0] = float("-inf")
        return reduce(nn.functional.cross_entropy(logits, targets, reduction="none"), reduction)
