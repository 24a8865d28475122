"""Full cross-entropy over dot products (the loss recent work found strongest for SASRec; e.g.
Klenitskiy & Vasilev, RecSys'23, "Turning dross into gold loss: is BERT4Rec really better than SASRec?").

    p(i | s) = exp(h_s . e_i) / sum_{j=1..|I|} exp(h_s . e_j)
    L        = - mean_{(s, t)} log p(t | s)

With the model's learned history bias (`history`, losses/base.py) the logit is h_s . e_i + b [i in H_s].

Every catalogue item is a negative (padding excluded). Cost O(N * |I| * d) per batch: fine up to ~10^5
items on CPU; above that use `sampled_softmax`. Served by a dot-product top-k (the ONNX export turns it
into an equivalent cosine top-k, see `semrec_worker.export`).

Inputs: hidden [N, d], targets [N] (1..n_items), items [n_items + 1, d].
"""

from __future__ import annotations

import torch
from torch import nn

from semrec_worker.losses.base import HistoryShift, Reduction, SeqRecLoss, reduce


class FullCrossEntropyLoss(SeqRecLoss):
    name = "full_ce"
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
        logits = hidden @ items.T
        if history is not None:
            logits = history.add_to(logits)
        logits[:, 0] = float("-inf")
        return reduce(nn.functional.cross_entropy(logits, targets, reduction="none"), reduction)
