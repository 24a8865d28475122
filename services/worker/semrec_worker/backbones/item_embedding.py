"""Item embedding layers: random, copied from an `ItemTable` (PCA-reduced when widths differ), or a frozen
table behind a trainable linear projection.

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


def table_reduction(rows: np.ndarray, dim: int) -> tuple[np.ndarray, PCAFit | None, float]:
    """The PCA-init rows: (unit-mean-norm rows [n, dim], the PCA or None when widths match, the scale s), so
    that rows = pca(table rows) / s. Kept so new items can be mapped the same way (the refresh encoders)."""
    if rows.shape[1] > dim:
        pca = fit_pca(rows, dim)
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
) -> tuple[nn.Module, InitReport]:
    """The item layer for a dataset whose item index k >= 1 is `item_ids[k - 1]`."""
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
            reduced, pca, _ = table_reduction(rows[known], dim)
            if pca is not None:
                report.reduction = f"pca {table.dim}->{dim}"
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
