"""What every sequential-recommendation loss shares: inputs, the padding column, the scoring it implies.

A loss receives, for N training positions, the sequence representations `hidden` [N, d], the target item
indices `targets` [N] (in 1..n_items), and the full item matrix `items` [n_items + 1, d] whose row 0 is
padding and never a candidate. It returns the mean loss over the N positions (or the sum, with
`reduction="sum"`, which the data-parallel trainer divides by the global number of positions).

`similarity` says how the trained model must score items at inference so that ranking matches training:
"dot" (h . e_i) or "cosine" (cos(h, e_i)).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Reduction = Literal["mean", "sum"]
Similarity = Literal["dot", "cosine"]


class SeqRecLoss(nn.Module):
    name: str = "base"
    similarity: Similarity = "dot"

    def forward(
        self,
        hidden: torch.Tensor,
        targets: torch.Tensor,
        items: torch.Tensor,
        generator: torch.Generator | None = None,
        reduction: Reduction = "mean",
    ) -> torch.Tensor:
        raise NotImplementedError


def scores(hidden: torch.Tensor, items: torch.Tensor, similarity: Similarity) -> torch.Tensor:
    """[B, n_items + 1] scores of every item (column 0 = padding, returned as -inf)."""
    if similarity == "cosine":
        hidden = nn.functional.normalize(hidden, dim=-1)
        items = nn.functional.normalize(items, dim=-1)
    out = hidden @ items.T
    out[:, 0] = float("-inf")
    return out


def reduce(values: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    return values.sum() if reduction == "sum" else values.mean()


def uniform_items(n: int, n_items: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """n item indices drawn uniformly from 1..n_items (never the padding index)."""
    return torch.randint(1, n_items + 1, (n,), device=device, generator=generator)
