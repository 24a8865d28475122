"""The `item-layer` refresh encoder of an `--item-layer frozen|dual` run, built from its saved model
(`semrec export onnx` builds it beside the bundle; see `ItemLayerEncoder` in refresh/encoders.py)."""

from __future__ import annotations

from pathlib import Path

import torch
from semrec.errors import UserError
from semrec.item_table import ItemTable

from semrec_worker.data.dataset import DataConfig, load_dataset
from semrec_worker.refresh.encoders import (
    ItemLayerEncoder,
    encoder_dir,
    encoder_kind,
    save_run_encoder,
    serving_space_of_run,
)
from semrec_worker.training.config import load_seqrec_config

ITEM_PREFIX = "item_embedding."


def save_item_layer_encoder(run_dir: str | Path, rebuild: bool = False) -> Path | None:
    """RUN_DIR/refresh_encoder/ (or .../item-layer/ beside another kind) for a frozen/dual run; None for an
    `init` run, a run whose item layer a caller brought (e.g. RAT's adapter, with its own encoder), a run with
    `--refresh-text-encoder none`, or one that already has it (unless `rebuild`)."""
    run_dir = Path(run_dir)
    config = load_seqrec_config(run_dir)
    if config.item_layer == "init" or config.refresh_text_encoder == "none":
        return None
    if not rebuild and encoder_kind(encoder_dir(run_dir, ItemLayerEncoder.kind)) == ItemLayerEncoder.kind:
        return encoder_dir(run_dir, ItemLayerEncoder.kind)
    state = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    own = ITEM_PREFIX + ("semantic." if config.item_layer == "dual" else "adapter.")
    if not any(key.startswith(own) for key in state):
        return None
    table = ItemTable.load(run_dir / "item_table.npz")

    def build() -> ItemLayerEncoder:
        dataset = load_dataset(DataConfig.model_validate({k: getattr(config, k) for k in DataConfig.model_fields}))
        if dataset.item_ids != table.ids:
            raise UserError("the run's dataset no longer matches its item table (items differ)")
        space = serving_space_of_run(run_dir, table.vectors)
        return ItemLayerEncoder.from_state(state, config.item_layer, config.fusion, config.refresh_neighbours,
                                           dataset.items, space, config.refresh_text_encoder)

    saved = save_run_encoder(run_dir, ItemLayerEncoder.kind, build)
    return saved[1] if saved else None
