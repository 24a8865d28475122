"""SASRec (Kang & McAuley, ICDM 2018, "Self-Attentive Sequential Recommendation").

Input (sec. III-B): E_hat = E_items * sqrt(d) + P, learned absolute positions P; dropout. Blocks (III-C/D):
causal self-attention, so position t attends to positions <= t only, then a point-wise feed-forward net,
each with a residual connection, layer norm and dropout (pre-norm here, with a final LayerNorm; the paper
normalises the attention query). Prediction (III-E): the output F_t at position t scores item i as
F_t . e_i with the shared item embeddings, and F_T (the last position) is h_s. Every position predicts
its next item, so one pass over a sequence trains on all its prefixes.

Serving needs F_T alone: `final_position` runs every block but the last over all positions and the last one
for position T only (its query against all keys and values, then its feed-forward row; transformer.py), the
same h_s as `forward` without computing the W - 1 other rows of the last block.

Positions are counted from the end of the max_len window (see `SequenceEncoder.positions`), so a batch
trimmed to its longest history gives exactly the output of the full max_len padding used in serving.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from semrec_worker.backbones.base import SequenceEncoder
from semrec_worker.backbones.transformer import TransformerBlock, attention_bias


class SASRec(SequenceEncoder):
    name = "sasrec"
    causal = True

    def __init__(
        self,
        item_embedding: nn.Module,
        max_len: int = 50,
        num_layers: int = 1,
        num_heads: int = 1,
        dropout: float = 0.2,
        **_: object,
    ) -> None:
        super().__init__(item_embedding, max_len)
        self.position_embedding = nn.Embedding(max_len, self.dim)
        nn.init.normal_(self.position_embedding.weight, 0.0, self.dim**-0.5)
        self.input_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TransformerBlock(self.dim, num_heads, dropout) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(self.dim)
        self.scale = math.sqrt(self.dim)

    def block_input(self, embeddings: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """E_hat = E * sqrt(d) + P with dropout, padding positions zeroed."""
        positions = self.positions(embeddings.shape[1], embeddings.device)
        x = embeddings * self.scale + self.position_embedding(positions).unsqueeze(0)
        return self.input_dropout(x) * real.unsqueeze(-1)

    def encode(self, embeddings: torch.Tensor, real: torch.Tensor, causal: bool) -> torch.Tensor:
        """[B, W, dim]: every position through every block."""
        x = self.block_input(embeddings, real)
        bias = attention_bias(real, causal)
        for block in self.blocks:
            x = block(x, bias)
        return self.final_norm(x)

    def encode_last(self, embeddings: torch.Tensor, real: torch.Tensor, causal: bool) -> torch.Tensor:
        """[B, dim]: `encode(...)[:, -1]`, with the last block computed for the last position only."""
        x = self.block_input(embeddings, real)
        *inner, last = self.blocks
        if inner:
            bias = attention_bias(real, causal)
            for block in inner:
                x = block(x, bias)
        x = last(x, attention_bias(real, causal=False), last_only=True)
        return self.final_norm(x[:, -1])

    def sequence_output(self, item_ids: torch.Tensor) -> torch.Tensor:
        return self.encode(self.embed(item_ids), item_ids != 0, causal=True)

    def final_position(self, item_ids: torch.Tensor) -> torch.Tensor:
        return self.encode_last(self.embed(item_ids), item_ids != 0, causal=True)
