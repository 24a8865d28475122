"""What every sequential-recommendation loss shares: inputs, the padding column, the scoring it implies.

A loss receives, for N training positions, the sequence representations `hidden` [N, d], the target item
indices `targets` [N] (in 1..n_items), and the full item matrix `items` [n_items + 1, d] whose row 0 is
padding and never a candidate. It returns the mean loss over the N positions (or the sum, with
`reduction="sum"`, which the data-parallel trainer divides by the global number of positions).

`similarity` says how the trained model must score items at inference so that ranking matches training:
"dot" (h . e_i) or "cosine" (cos(h, e_i)).

`history` (optional, a `HistoryShift`): the model's learned history bias b and, per position, which items
are in its history; every loss then scores item i as sim(h, e_i) + b * [i in history] (in the similarity's
units, before a temperature), the score the recommender ranks by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

Reduction = Literal["mean", "sum"]
Similarity = Literal["dot", "cosine"]


@dataclass(frozen=True)
class HistoryShift:
    """The history bias of N scored positions: `seen` [N, n_items + 1] bool (item i is in row n's history;
    column 0, padding, never) and the scalar `bias` b added to those scores; optionally `last` [N], each
    row's most recent item (0: none), whose score also gets `last_bias` b_last."""

    seen: torch.Tensor
    bias: torch.Tensor
    last: torch.Tensor | None = None
    last_bias: torch.Tensor | None = None

    @classmethod
    def of(cls, history: torch.Tensor, n_columns: int, bias: torch.Tensor, last: torch.Tensor | None = None,
           last_bias: torch.Tensor | None = None) -> HistoryShift:
        """From item indices [N, W] (0 = no item); an item occurring several times is marked once."""
        seen = torch.zeros(history.shape[0], n_columns, dtype=torch.bool, device=history.device)
        seen.scatter_(1, history, True)
        seen[:, 0] = False
        return cls(seen, bias, last if last_bias is not None else None, last_bias)

    def add_to(self, scores: torch.Tensor) -> torch.Tensor:
        """[N, n_items + 1] scores + b where seen (+ b_last at the most recent item; padding's column 0 is
        left for the caller to mask)."""
        out = scores + self.bias.to(scores.dtype) * self.seen
        if self.last is not None and self.last_bias is not None:
            extra = self.last_bias.to(scores.dtype).expand(len(self.last), 1)
            out = out.scatter_add(1, self.last.unsqueeze(1), extra)
        return out

    def at(self, columns: torch.Tensor) -> torch.Tensor:
        """The shift of the given items: `columns` [N, K] per row, or [K] shared by every row -> [N, K]."""
        seen = self.seen[:, columns] if columns.ndim == 1 else self.seen.gather(1, columns)
        out = self.bias * seen
        if self.last is not None and self.last_bias is not None:
            wide = columns.unsqueeze(0) if columns.ndim == 1 else columns
            out = out + self.last_bias * (wide == self.last.unsqueeze(1)) * (self.last != 0).unsqueeze(1)
        return out


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
        history: HistoryShift | None = None,
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
