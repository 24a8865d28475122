"""Symmetric in-batch InfoNCE between two aligned batches of vectors (LLMEmb SCFT eq. 5, RAT eq. 7).

For B pairs (x_i, y_i) and a similarity s (cosine, or the raw dot product),

    L = -(1 / 2B) * sum_i [ log( exp(s(x_i, y_i) / tau) / sum_j exp(s(x_i, y_j) / tau) )
                          + log( exp(s(y_i, x_i) / tau) / sum_j exp(s(y_i, x_j) / tau) ) ]

i.e. the cross-entropy of each row of the similarity matrix against its diagonal, in both directions;
the other B - 1 items of the batch are the negatives. The temperature tau is either fixed or learnable
(parameterised as log(1/tau) and clipped at 1/tau <= 100, as in CLIP).

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

    @property
    def temperature(self) -> float:
        return float(1.0 / self.log_inverse_temperature.detach().exp().clamp(max=MAX_INVERSE_TEMPERATURE))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.ndim != 2:
            raise ValueError(f"expected two [B, d] tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        x, y = x.float(), y.float()
        if self.similarity == "cosine":
            x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
        logits = (x @ y.T) * self.log_inverse_temperature.exp().clamp(max=MAX_INVERSE_TEMPERATURE)
        labels = torch.arange(x.shape[0], device=x.device)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
