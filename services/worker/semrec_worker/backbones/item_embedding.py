"""Item embedding layers: random, copied from an `ItemTable` (PCA-reduced when widths differ), a frozen
table behind a trainable linear projection or adapter (`--item-layer frozen`), or both views fused
(`--item-layer dual`: frozen table -> adapter plus a trainable ID embedding; see training/item_layer.py).

Scale: a random layer draws N(0, 1/dim), so rows have norm ~1; a table is rescaled (one factor for the whole
matrix, the geometry is kept) so its mean row norm is 1 too. That keeps the logit scale at initialisation
the same whatever the source, so learning rates transfer between random and table init.

PCA: centred rows, top-`dim` right singular vectors (computed over the table's rows for this dataset's
items). Items of the dataset missing from the table get random rows; how many is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from semrec.errors import UserError
from semrec.item_table import ItemTable
from torch import nn

from semrec_worker.core.reduction import PCAFit, fit_pca

Projection = Literal["pca", "linear"]
FusionName = Literal["sum", "concat", "gate"]


class TableProjection(nn.Module):
    """weight = [0; table @ W^T + b]: a frozen table of width w mapped to the model width by a trained linear map."""

    def __init__(self, table: torch.Tensor, dim: int) -> None:
        super().__init__()
        self.register_buffer("table", table.float())
        self.linear = nn.Linear(table.shape[1], dim)

    @property
    def weight(self) -> torch.Tensor:
        projected = self.linear(self.table[1:])
        return torch.cat([projected.new_zeros(1, projected.shape[1]), projected], dim=0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.linear(self.table[ids])


@dataclass
class InitReport:
    """What the initialisation did (saved in the run's metrics)."""

    source: str
    method: str
    table_dim: int | None = None
    reduction: str | None = None
    missing_items: int = 0
    explained_variance: float | None = None
    notes: list[str] = field(default_factory=list)


def unit_mean_norm(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1)
    return matrix / max(float(norms.mean()), 1e-12)


def table_reduction(rows: np.ndarray, dim: int, whiten: bool = False) -> tuple[np.ndarray, PCAFit | None, float]:
    """The PCA-init rows: (unit-mean-norm rows [n, dim], the PCA or None when widths match, the scale s), so
    that rows = pca(table rows) / s. Kept so new items can be mapped the same way (the refresh encoders).

    `whiten`: the PCA whitening instead (each principal direction divided by its standard deviation, also when
    the widths match), so a table whose variance sits in a few directions starts with every kept direction
    at the same variance."""
    if rows.shape[1] > dim or (whiten and rows.shape[1] == dim):
        pca = fit_pca(rows, dim)
        if whiten:
            pca = pca.whitened(rows)
        reduced = pca.transform(rows)
    elif rows.shape[1] == dim:
        pca, reduced = None, np.asarray(rows, dtype=np.float32)
    else:
        raise UserError(
            f"item table width {rows.shape[1]} < model width {dim}: PCA cannot widen; "
            f"use --projection linear or --dim {rows.shape[1]} (or smaller)"
        )
    scale = max(float(np.linalg.norm(reduced, axis=1).mean()), 1e-12)
    return reduced / scale, pca, scale


def random_embedding(n_items: int, dim: int, generator: torch.Generator | None = None) -> nn.Embedding:
    layer = nn.Embedding(n_items + 1, dim, padding_idx=0)
    with torch.no_grad():
        layer.weight.normal_(0.0, dim**-0.5, generator=generator)
        layer.weight[0].zero_()
    return layer


def build_item_embedding(
    item_ids: list[str],
    dim: int,
    table: ItemTable | None = None,
    projection: Projection = "pca",
    freeze: bool = False,
    generator: torch.Generator | None = None,
    whiten: bool = False,
) -> tuple[nn.Module, InitReport]:
    """The item layer for a dataset whose item index k >= 1 is `item_ids[k - 1]`; `whiten`: the PCA rows are
    whitened (`table_reduction`)."""
    n_items = len(item_ids)
    if table is None:
        layer = random_embedding(n_items, dim, generator)
        report = InitReport(source="random", method="random")
    else:
        rows, missing = table.aligned(item_ids)
        if len(missing) == n_items:
            raise UserError("item table shares no item id with the dataset (was it built for another dataset?)")
        missing_set = set(missing)
        known = np.array([item not in missing_set for item in item_ids], dtype=bool)
        report = InitReport(
            source=str(table.metadata.get("path", "table")),
            method=str(table.metadata.get("method", "table")),
            table_dim=table.dim,
            missing_items=len(missing),
        )
        if projection == "linear":
            rows[known] = unit_mean_norm(rows[known])
            full = np.zeros((n_items + 1, table.dim), dtype=np.float32)
            full[1:] = rows
            layer = TableProjection(torch.from_numpy(full), dim)
            report.reduction = f"linear {table.dim}->{dim} (table frozen)"
        else:
            reduced, pca, _ = table_reduction(rows[known], dim, whiten)
            if pca is not None:
                report.reduction = f"pca {table.dim}->{dim}" + (" (whitened)" if whiten else "")
                report.explained_variance = round(pca.variance_kept, 4)
            weight = torch.zeros(n_items + 1, dim)
            random_rows = random_embedding(n_items, dim, generator).weight.detach()
            weight[1:] = random_rows[1:]
            weight[1:][torch.from_numpy(known)] = torch.from_numpy(reduced.astype(np.float32))
            layer = nn.Embedding(n_items + 1, dim, padding_idx=0)
            with torch.no_grad():
                layer.weight.copy_(weight)
        if missing:
            report.notes.append(f"{len(missing)} dataset items missing from the table got random rows")
    if freeze:
        for parameter in layer.parameters():
            parameter.requires_grad_(False)
    return layer, report


# ------------------------------------------------------------------------------------ rebuilding a saved layer

BUILT_IN_ITEM_LAYERS: dict[type[nn.Module], str] = {nn.Embedding: "embedding", TableProjection: "table-projection"}


def empty_embedding(state: dict[str, torch.Tensor], prefix: str = "item_embedding.") -> nn.Embedding:
    """An `nn.Embedding` shaped like the saved one (its weights come from the state dict)."""
    rows, dim = state[prefix + "weight"].shape
    return nn.Embedding(rows, dim, padding_idx=0)


def empty_table_projection(state: dict[str, torch.Tensor], prefix: str = "item_embedding.") -> TableProjection:
    """A `TableProjection` shaped like the saved one (the frozen table is a buffer of the state dict)."""
    return TableProjection(torch.zeros(state[prefix + "table"].shape), state[prefix + "linear.weight"].shape[0])


# ------------------------------------------------------------------------------ frozen and dual item layers


def _padded(rows: torch.Tensor) -> torch.Tensor:
    return torch.cat([rows.new_zeros(1, rows.shape[1]), rows], dim=0)


def whitening_rows(rows: torch.Tensor, k: int) -> torch.Tensor:
    """[k', w] with k' <= k: the top principal directions of `rows`, each divided by its standard deviation,
    so that x -> W (x - mean) has unit variance along each (PCA whitening); directions with no variance are
    left out."""
    centred = rows.double() - rows.double().mean(dim=0)
    variances, vectors = torch.linalg.eigh(centred.T @ centred / max(len(rows) - 1, 1))
    order = torch.argsort(variances, descending=True)[:k]
    keep = order[variances[order] > 1e-10 * variances.max().clamp(min=1e-30)]
    return (vectors[:, keep] / variances[keep].sqrt()).T.to(rows.dtype)


def start_adapter(adapter: nn.Sequential, rows: torch.Tensor, whiten: bool = False) -> None:
    """Start a stack of linear layers with no shared offset: the first layer's bias is -W_1 mean(rows), the
    others zero, so the mean row maps to 0 (a start the biases can always express: W_1 (z - mean) = W_1 z + b_1),
    and the last layer is rescaled so that `rows` map to vectors of mean norm 1. With torch's default biases
    the shared offset W_2 b_1 + b_2 is as long as the item-specific part W_2 W_1 z; an uncentred table (raw
    mean-pooled LM states: mean pairwise cosine 0.81) does the same through W_1. Either way every item starts
    pointing one way (mean pairwise cosine 0.86-0.93 measured): under a cosine or dot-product loss the items
    are then almost indistinguishable, and training drifts to popularity before it separates them.

    With `whiten`, W_1 starts as the PCA whitening of `rows` (`whitening_rows`; rows past the table's rank keep
    torch's draw): a table whose variance sits in a few directions (a SAID table: effective rank ~20 of 2304)
    reaches the hidden layer with every kept direction at unit variance, instead of the item-specific
    directions being drowned by the dominant ones. Only the start changes; the layer is the same."""
    linear = [layer for layer in adapter if isinstance(layer, nn.Linear)]
    with torch.no_grad():
        for layer in linear:
            if layer.bias is not None:
                layer.bias.zero_()
        if whiten:
            white = whitening_rows(rows, linear[0].weight.shape[0])
            linear[0].weight[: len(white)] = white
        if linear[0].bias is not None:
            linear[0].bias.copy_(-(linear[0].weight @ rows.mean(dim=0)))
        norm = adapter(rows).norm(dim=1).mean().clamp(min=1e-12)
        linear[-1].weight.div_(norm)
        if linear[-1].bias is not None:
            linear[-1].bias.div_(norm)


class TableAdapter(nn.Module):
    """A frozen table z [n_items + 1, w] through a trainable adapter: W_2 (W_1 z + b_1) + b_2 (LLMEmb's RAT
    form; one linear map when `hidden` is 0). `start_adapter` starts it with no shared offset and rows of mean norm
    1, the scale of the other item layers."""

    part_name = "table-adapter"  # recorded in the run's config.json; `empty_table_adapter` rebuilds it

    def __init__(self, table: torch.Tensor, dim: int, hidden: int = 128, whiten: bool = False) -> None:
        super().__init__()
        self.register_buffer("table", table.float())
        width = table.shape[1]
        layers = [nn.Linear(width, hidden), nn.Linear(hidden, dim)] if hidden else [nn.Linear(width, dim)]
        self.adapter = nn.Sequential(*layers)
        start_adapter(self.adapter, self.table[1:], whiten)

    @property
    def weight(self) -> torch.Tensor:
        return _padded(self.adapter(self.table[1:]))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.table[ids])


class ViewFusion(nn.Module):
    """Combines the semantic view s and the ID view e of the same items (shapes [*, dim]): sum (s + e),
    concat (W [s; e] + b, W starting as [I/2, I/2]) or gate (g = sigmoid(W_g [s; e] + b_g), g s + (1 - g) e,
    starting at g = 1/2)."""

    def __init__(self, fusion: FusionName, dim: int) -> None:
        super().__init__()
        if fusion not in ("sum", "concat", "gate"):
            raise UserError(f"unknown fusion {fusion!r} (sum, concat or gate)")
        self.fusion = fusion
        if fusion != "sum":
            self.linear = nn.Linear(2 * dim, dim)
            with torch.no_grad():
                if fusion == "concat":
                    eye = torch.eye(dim) / 2
                    self.linear.weight.copy_(torch.cat([eye, eye], dim=1))
                else:
                    self.linear.weight.zero_()
                self.linear.bias.zero_()

    def forward(self, semantic: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        if self.fusion == "sum":
            return semantic + ids
        both = torch.cat([semantic, ids], dim=-1)
        if self.fusion == "concat":
            return self.linear(both)
        gate = torch.sigmoid(self.linear(both))
        return gate * semantic + (1 - gate) * ids


class DualItemLayer(nn.Module):
    """Both views of an item: `semantic` (a `TableAdapter` over the frozen table) and `ids` (a trainable
    `nn.Embedding`), fused by `fusion`; `weight` (what the loss scores and the bundle serves) is the fused
    matrix, and `forward(ids)` equals `weight[ids]`."""

    def __init__(self, semantic: TableAdapter, ids: nn.Embedding, fusion: ViewFusion) -> None:
        super().__init__()
        self.semantic, self.ids, self.fusion = semantic, ids, fusion

    @property
    def part_name(self) -> str:
        """Recorded in the run's config.json (`dual-sum`, `dual-concat`, `dual-gate`); `empty_dual_*` rebuild it."""
        return f"dual-{self.fusion.fusion}"

    @property
    def weight(self) -> torch.Tensor:
        fused = self.fusion(self.semantic.weight[1:], self.ids.weight[1:])
        return _padded(fused)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fusion(self.semantic(ids), self.ids(ids))


def scaled_table(rows: np.ndarray, known: np.ndarray) -> torch.Tensor:
    """[n_items + 1, w]: row 0 padding, the table's rows for known items rescaled to mean norm 1, zero rows
    for items missing from the table (their adapted vector is the adapter's bias alone)."""
    rows = np.array(rows, dtype=np.float32)
    rows[known] = unit_mean_norm(rows[known])
    rows[~known] = 0.0
    full = np.zeros((len(rows) + 1, rows.shape[1]), dtype=np.float32)
    full[1:] = rows
    return torch.from_numpy(full)


def build_item_layer(
    mode: str,
    item_ids: list[str],
    dim: int,
    table: ItemTable | None,
    fusion: FusionName = "sum",
    adapter_hidden: int = 128,
    id_init: str = "table",
    generator: torch.Generator | None = None,
    adapter_start: str = "centred",
    init_start: str = "pca",
) -> tuple[nn.Module, InitReport]:
    """The `frozen` or `dual` item layer (`init` is `build_item_embedding`)."""
    if table is None:
        raise UserError(f"--item-layer {mode} needs an item table (--init PATH), not --init random")
    rows, missing = table.aligned(item_ids)
    if len(missing) == len(item_ids):
        raise UserError("item table shares no item id with the dataset (was it built for another dataset?)")
    missing_set = set(missing)
    known = np.array([item not in missing_set for item in item_ids], dtype=bool)
    if adapter_start not in ("centred", "whitened"):
        raise UserError(f"unknown adapter start {adapter_start!r} (centred or whitened)")
    semantic = TableAdapter(scaled_table(rows, known), dim, adapter_hidden, whiten=adapter_start == "whitened")
    adapter = f"{table.dim}->{adapter_hidden}->{dim}" if adapter_hidden else f"{table.dim}->{dim}"
    if adapter_start == "whitened":
        adapter += " (whitened start)"
    report = InitReport(source=str(table.metadata.get("path", "table")), method=str(table.metadata.get("method", "table")),
                        table_dim=table.dim, missing_items=len(missing))
    if missing:
        report.notes.append(f"{len(missing)} dataset items missing from the table: zero table rows")
    if mode == "frozen":
        report.reduction = f"frozen table, adapter {adapter}"
        return semantic, report
    if mode != "dual":
        raise UserError(f"unknown item layer {mode!r} (init, frozen or dual)")
    id_table = table if id_init == "table" else None
    ids, id_report = build_item_embedding(item_ids, dim, id_table, "pca", False, generator,
                                          whiten=init_start == "whitened")
    report.reduction = f"dual ({fusion}): frozen table, adapter {adapter} + ID embedding from {id_init}" + (
        f" ({id_report.reduction})" if id_report.reduction else "")
    report.explained_variance = id_report.explained_variance
    return DualItemLayer(semantic, ids, ViewFusion(fusion, dim)), report


def empty_table_adapter(state: dict[str, torch.Tensor], prefix: str = "item_embedding.") -> TableAdapter:
    """A `TableAdapter` shaped like the saved one (the frozen table is a buffer of the state dict)."""
    first, last = state[prefix + "adapter.0.weight"], state.get(prefix + "adapter.1.weight")
    hidden, dim = (first.shape[0], last.shape[0]) if last is not None else (0, first.shape[0])
    return TableAdapter(torch.ones(state[prefix + "table"].shape), dim, hidden)


def _empty_dual(fusion: FusionName, state: dict[str, torch.Tensor], prefix: str = "item_embedding.") -> DualItemLayer:
    semantic = empty_table_adapter(state, prefix + "semantic.")
    ids = empty_embedding(state, prefix + "ids.")
    return DualItemLayer(semantic, ids, ViewFusion(fusion, ids.weight.shape[1]))


def empty_dual_sum(state: dict[str, torch.Tensor], prefix: str = "item_embedding.") -> DualItemLayer:
    return _empty_dual("sum", state, prefix)


def empty_dual_concat(state: dict[str, torch.Tensor], prefix: str = "item_embedding.") -> DualItemLayer:
    return _empty_dual("concat", state, prefix)


def empty_dual_gate(state: dict[str, torch.Tensor], prefix: str = "item_embedding.") -> DualItemLayer:
    return _empty_dual("gate", state, prefix)
