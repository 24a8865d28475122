"""A small pre-LayerNorm Transformer block shared by SASRec and BERT4Rec, written with plain tensor ops so the
ONNX export is a straightforward graph (no fused kernels, no data-dependent Python).

`last_only=True` computes a block's output for the last position alone: its query row attends to the keys and
values of every position, then the output projection and the feed-forward net run on that one row. A model
whose output is the last position's (h_s) needs nothing else from its last block, so serving runs it that way
(`SequenceEncoder.final_position`); every other position's output of the last block would be thrown away."""

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

    def forward(self, x: torch.Tensor, bias: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """x [B, W, dim] -> [B, W, dim]; with `last_only`, [B, 1, dim] for the last query position (then `bias`
        needs only that query's row, [B, 1, 1, W])."""
        batch, width, dim = x.shape
        head_dim = dim // self.heads
        if last_only:  # the query projection for one row, key/value projections for all (rows dim.. of qkv)
            q = nn.functional.linear(x[:, -1:], self.qkv.weight[:dim], self.qkv.bias[:dim])
            q = q.view(batch, 1, self.heads, head_dim).transpose(1, 2)
            kv = nn.functional.linear(x, self.qkv.weight[dim:], self.qkv.bias[dim:])
            k, v = kv.view(batch, width, 2, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        else:
            q, k, v = self.qkv(x).view(batch, width, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        weights = (q @ k.transpose(-1, -2)) / math.sqrt(head_dim) + bias
        weights = self.dropout(weights.softmax(dim=-1))
        return self.out((weights @ v).transpose(1, 2).reshape(batch, q.shape[2], dim))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float, ffn_dim: int | None = None) -> None:
        super().__init__()
        ffn_dim = ffn_dim or dim
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, heads, dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """[B, W, dim] -> [B, W, dim], or [B, 1, dim] (the last position's output alone) with `last_only`."""
        attended = self.attention(self.attention_norm(x), bias, last_only)
        x = (x[:, -1:] if last_only else x) + self.dropout(attended)
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


def attention_bias(real: torch.Tensor, causal: bool) -> torch.Tensor:
    """Additive bias [B, 1, W, W]: keys that are padding (and, if causal, in the future) get MASKED. The last
    query's row alone is `attention_bias(real, causal=False)` [B, 1, 1, W]: no key lies in its future."""
    allowed = real.unsqueeze(1).unsqueeze(2)  # [B, 1, 1, W]
    if causal:
        width = real.shape[1]
        allowed = allowed & torch.ones(width, width, dtype=torch.bool, device=real.device).tril()
    zero = torch.zeros((), dtype=torch.float32, device=real.device)
    return torch.where(allowed, zero, torch.full_like(zero, MASKED))
