"""Symmetric in-batch InfoNCE between two aligned batches of vectors (LLMEmb SCFT eq. 5, RAT eq. 7).

For B pairs (x_i, y_i) and a similarity s (cosine, or the raw dot product),

    L = -(1 / 2B) * sum_i [ log( exp(s(x_i, y_i) / tau) / sum_j exp(s(x_i, y_j) / tau) )
                          + log( exp(s(y_i, x_i) / tau) / sum_j exp(s(y_i, x_j) / tau) ) ]

i.e. the cross-entropy of each row of the similarity matrix against its diagonal, in both directions;
the other B - 1 items of the batch are the negatives. The temperature tau is either fixed or learnable
(parameterised as log(1/tau) and clipped at 1/tau <= 100, as in CLIP).

`exclude_positive=True` is LLMEmb's form (SCFT eq. 4, RAT eq. 7): the indicator I[i != k] takes the positive
out of the denominator, so each direction is

    -(1 / B) * sum_i [ s(x_i, y_i) / tau - log sum_{k != i} exp(s(x_i, y_k) / tau) ]

(it can go below zero). `same` (an id per row, e.g. the item at each batch position of RAT eq. 7) also takes
every other row with the positive's id out of the denominator: a repeated item is never its own negative.

`grouped(x, y, counts)` is the same loss for a batch in which pair i occurs counts[i] times (the ids of
`same` made unique): with n_k = counts[k], each direction is

    -(1 / sum_i n_i) * sum_i n_i [ s(x_i, y_i) / tau - log sum_{k != i} n_k exp(s(x_i, y_k) / tau) ]

(`exclude_positive=False` adds the positive's own exp(s(x_i, y_i) / tau) once to its denominator), exactly
`forward` on the repeated rows, at U x U instead of B x B for U distinct ids.

Inputs: `x`, `y` float tensors [B, d] (row i of x and row i of y are the positive pair), B >= 2.
Output: a scalar loss. Example: `SymmetricInfoNCE(0.05, learnable=True)(view_a, view_b)`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

MAX_INVERSE_TEMPERATURE = 100.0


class SymmetricInfoNCE(nn.Module):
    def __init__(
        self,
        temperature: float = 0.05,
        learnable: bool = False,
        similarity: Literal["cosine", "dot"] = "cosine",
        exclude_positive: bool = False,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        log_inverse = torch.tensor(math.log(1.0 / temperature))
        if learnable:
            self.log_inverse_temperature = nn.Parameter(log_inverse)
        else:
            self.register_buffer("log_inverse_temperature", log_inverse)
        self.similarity = similarity
        self.exclude_positive = exclude_positive

    @property
    def temperature(self) -> float:
        return float(1.0 / self.log_inverse_temperature.detach().exp().clamp(max=MAX_INVERSE_TEMPERATURE))

    def logits(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """s(x_i, y_k) / tau, [B, B]."""
        x, y = x.float(), y.float()
        if self.similarity == "cosine":
            x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
        return (x @ y.T) * self.log_inverse_temperature.exp().clamp(max=MAX_INVERSE_TEMPERATURE)

    def forward(self, x: torch.Tensor, y: torch.Tensor, same: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape != y.shape or x.ndim != 2:
            raise ValueError(f"expected two [B, d] tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        logits = self.logits(x, y)
        if not self.exclude_positive and same is None:
            labels = torch.arange(x.shape[0], device=x.device)
            return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
        eye = torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
        duplicate = (same.unsqueeze(0) == same.unsqueeze(1)) & ~eye if same is not None else torch.zeros_like(eye)
        out = eye | duplicate if self.exclude_positive else duplicate  # what the denominators leave out
        positive = logits.diagonal()
        masked = logits.masked_fill(out, float("-inf"))
        rows, cols = torch.logsumexp(masked, dim=1), torch.logsumexp(masked, dim=0)
        # a row whose every other entry is its own item has no negative: it contributes nothing
        valid = torch.isfinite(rows) & torch.isfinite(cols)
        if not bool(valid.any()):
            return logits.sum() * 0.0
        loss = (rows - positive)[valid].mean() + (cols - positive)[valid].mean()
        return 0.5 * loss

    def grouped(self, x: torch.Tensor, y: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """`forward(x[r], y[r], same=r)` for r repeating row i `counts[i]` times, on the U distinct rows."""
        if x.shape != y.shape or x.ndim != 2 or counts.shape != x.shape[:1]:
            raise ValueError(f"expected two [U, d] tensors and [U] counts, got {tuple(x.shape)}, {tuple(y.shape)}, "
                             f"{tuple(counts.shape)}")
        logits = self.logits(x, y)
        n = counts.to(logits.dtype)
        log_n = n.log()
        eye = torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
        own = float("-inf") if self.exclude_positive else 0.0  # the positive once, or not at all
        row_weights = log_n.unsqueeze(0).expand_as(logits).masked_fill(eye, own)  # column k counted n_k times
        col_weights = log_n.unsqueeze(1).expand_as(logits).masked_fill(eye, own)
        rows = torch.logsumexp(logits + row_weights, dim=1)
        cols = torch.logsumexp(logits + col_weights, dim=0)
        positive = logits.diagonal()
        valid = torch.isfinite(rows) & torch.isfinite(cols)
        if not bool(valid.any()):
            return logits.sum() * 0.0
        weight = n[valid] / n[valid].sum()
        return 0.5 * (((rows - positive)[valid] * weight).sum() + ((cols - positive)[valid] * weight).sum())
