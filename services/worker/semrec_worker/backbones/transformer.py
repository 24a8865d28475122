"""A small pre-LayerNorm Transformer block shared by SASRec and BERT4Rec, written with plain tensor ops so the
ONNX export is a straightforward graph (no fused kernels, no data-dependent Python)."""

from __future__ import annotations

import math

import torch
from torch import nn

MASKED = -1e9  # finite, so a query whose keys are all masked (a padding row) gives no NaN


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        batch, width, dim = x.shape
        head_dim = dim // self.heads
        q, k, v = self.qkv(x).view(batch, width, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        weights = (q @ k.transpose(-1, -2)) / math.sqrt(head_dim) + bias
        weights = self.dropout(weights.softmax(dim=-1))
        return self.out((weights @ v).transpose(1, 2).reshape(batch, width, dim))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float, ffn_dim: int | None = None) -> None:
        super().__init__()
        ffn_dim = ffn_dim or dim
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, heads, dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x), bias))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


def attention_bias(real: torch.Tensor, causal: bool) -> torch.Tensor:
    """Additive bias [B, 1, W, W]: keys that are padding (and, if causal, in the future) get MASKED."""
    allowed = real.unsqueeze(1).unsqueeze(2)  # [B, 1, 1, W]
    if causal:
        width = real.shape[1]
        allowed = allowed & torch.ones(width, width, dtype=torch.bool, device=real.device).tril()
    zero = torch.zeros((), dtype=torch.float32, device=real.device)
    return torch.where(allowed, zero, torch.full_like(zero, MASKED))
