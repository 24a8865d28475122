"""Synthetic bundles with real ONNX encoders, for tests and benchmarks (needs torch: the worker extra).

The encoders are stand-ins with the issue-3 architectures at the serving shapes (random weights: serving
cost does not depend on what was learned): `sasrec` = item + positional embedding, one causal
self-attention block, last position; `gru4rec` = item embedding + one GRU layer, last state; `mean` = mean
of the non-padding item embeddings (the tiny test encoder). All end in an L2 normalisation.

Graph form (`encoder_graph`, recorded in the bundle's metadata): `final-position` (default), what `semrec export
onnx` writes: the SASRec-like block computes the last position's query row only (keys and values of every
position), then its output projection and feed-forward row; `all-positions`, what exports before it wrote:
every position through the block, the last one kept. Same weights, same outputs to float rounding; the
benchmarks compare the two (`semrec bench encoder`). The GRU and mean encoders are one form already.
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from semrec.bundle import ENCODER_INPUT, ENCODER_OUTPUT, Bundle

Backbone = Literal["sasrec", "gru4rec", "mean"]
EncoderGraph = Literal["final-position", "all-positions"]
ENCODER_GRAPHS: tuple[str, ...] = ("final-position", "all-positions")


def build_encoder_module(backbone: Backbone, n_items: int, dim: int, max_len: int, seed: int = 0,
                         encoder_graph: EncoderGraph = "final-position"):  # fmt: skip
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class MeanPool(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.items = nn.Embedding(n_items + 1, dim, padding_idx=0)

        def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
            mask = (item_ids > 0).unsqueeze(-1).float()
            pooled = (self.items(item_ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return nn.functional.normalize(pooled, dim=-1)

    class GRU4RecLike(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.items = nn.Embedding(n_items + 1, dim, padding_idx=0)
            self.gru = nn.GRU(dim, dim, num_layers=1, batch_first=True)

        def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
            output, _ = self.gru(self.items(item_ids))
            return nn.functional.normalize(output[:, -1], dim=-1)

    class SASRecLike(nn.Module):
        def __init__(self, heads: int = 2) -> None:
            super().__init__()
            self.items = nn.Embedding(n_items + 1, dim, padding_idx=0)
            self.positions = nn.Embedding(max_len, dim)
            self.heads = heads
            self.qkv = nn.Linear(dim, 3 * dim)
            self.out = nn.Linear(dim, dim)
            self.norm1 = nn.LayerNorm(dim)
            self.norm2 = nn.LayerNorm(dim)
            self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
            causal = torch.triu(torch.ones(max_len, max_len, dtype=torch.bool), diagonal=1)
            self.register_buffer("causal", causal, persistent=False)

        def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
            batch, length = item_ids.shape
            x = self.items(item_ids) + self.positions.weight[:length].unsqueeze(0)
            normed = self.norm1(x)
            if encoder_graph == "final-position":  # the last query row; no key lies in its future
                queries = 1
                q = nn.functional.linear(normed[:, -1:], self.qkv.weight[:dim], self.qkv.bias[:dim])
                k, v = nn.functional.linear(normed, self.qkv.weight[dim:], self.qkv.bias[dim:]).chunk(2, dim=-1)
                blocked = (item_ids == 0).unsqueeze(1).unsqueeze(1)
                x = x[:, -1:]
            else:
                queries = length
                q, k, v = self.qkv(normed).chunk(3, dim=-1)
                blocked = self.causal[:length, :length] | (item_ids == 0).unsqueeze(1).unsqueeze(1)
            head_dim = dim // self.heads
            q = q.reshape(batch, queries, self.heads, head_dim).transpose(1, 2)
            k, v = (t.reshape(batch, length, self.heads, head_dim).transpose(1, 2) for t in (k, v))
            scores = (q @ k.transpose(-1, -2) / head_dim**0.5).masked_fill(blocked, -1e9)
            attended = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, queries, dim)
            x = x + self.out(attended)
            x = x + self.ffn(self.norm2(x))
            return nn.functional.normalize(x[:, -1], dim=-1)

    modules = {"mean": MeanPool, "gru4rec": GRU4RecLike, "sasrec": SASRecLike}
    return modules[backbone]().eval()


def export_onnx(module, max_len: int) -> bytes:
    import warnings

    import torch

    example = torch.ones((2, max_len), dtype=torch.int64)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter (dynamo=False) is deprecated but exact here
        torch.onnx.export(
            module, (example,), buffer, input_names=[ENCODER_INPUT], output_names=[ENCODER_OUTPUT],
            dynamic_axes={ENCODER_INPUT: {0: "batch"}, ENCODER_OUTPUT: {0: "batch"}}, opset_version=17, dynamo=False,
        )  # fmt: skip
    return buffer.getvalue()


def random_unit_vectors(n: int, dim: int, seed: int = 0, items_per_cluster: int | None = 100) -> np.ndarray:
    """Unit item vectors. Learned item embeddings are clustered (categories, brands), so by default items
    scatter around n / items_per_cluster random centres (cosine to their centre about 0.7); with
    `items_per_cluster=None` they are i.i.d. Gaussian, the worst case for ANN recall."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    if items_per_cluster:
        centres = rng.standard_normal((max(n // items_per_cluster, 1), dim), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        vectors /= np.sqrt(dim)  # noise of norm ~1 around a unit centre
        vectors += centres[rng.integers(0, len(centres), n)]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def synthetic_bundle(
    n_items: int,
    dim: int = 32,
    max_len: int = 20,
    backbone: Backbone = "mean",
    seed: int = 0,
    item_ids: list[str] | None = None,
    encoder_items: int | None = None,
    encoder_graph: EncoderGraph = "final-position",
) -> Bundle:
    """A bundle with a real ONNX encoder; `encoder_items` caps the encoder's vocabulary (default n_items)."""
    rng = np.random.default_rng(seed)
    return Bundle(
        encoder_onnx=synthetic_encoder(backbone, encoder_items or n_items, dim, max_len, seed, encoder_graph),
        item_ids=item_ids or [f"i{i}" for i in range(1, n_items + 1)],
        item_vectors=random_unit_vectors(n_items, dim, seed),
        popularity=rng.integers(0, 1000, n_items).astype(np.float32),
        metadata={"backbone": backbone, "max_len": max_len, "dim": dim, "source": "synthetic", "seed": seed,
                  "encoder_graph": encoder_graph},
    )


def synthetic_encoder(backbone: Backbone, n_items: int, dim: int, max_len: int, seed: int = 0,
                      encoder_graph: EncoderGraph = "final-position") -> bytes:  # fmt: skip
    """The ONNX bytes of a synthetic bundle's encoder (deterministic from the seed: both graph forms of one
    seed share their weights)."""
    return export_onnx(build_encoder_module(backbone, n_items, dim, max_len, seed, encoder_graph), max_len)
