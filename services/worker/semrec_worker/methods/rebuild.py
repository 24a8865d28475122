"""`model_from_config`: a trained run's torch model, rebuilt from its config.json and its weights alone.

A run's config.json holds its settings (`config`), the config class (`kind`: `SeqRecConfig`, or a stage-2
config such as `TrainRATConfig` with a `seqrec` part) and the pluggable parts it trained with (`parts`: the
backbone, the item layer and the extra loss, by name). The item layer is named in the method registry
(`Stage2.item_layer`, or the seqrec trainer's own `embedding` / `table-projection`), which builds an empty
layer shaped like the saved one; the backbone comes from the seqrec settings, and RUN_DIR/model.pt fills both
(strictly: every weight and buffer must match). Nothing else is read, neither the dataset nor the tables the
run was initialised from, so an exported model is the trained one, the RAT adapter and TSLRec's gate included.
Runs of earlier versions (flat config.json, `parts` naming Python classes) rebuild too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from semrec.config import JobConfig, config_payload, read_config_file
from semrec.errors import UserError

from semrec_worker.backbones import SequenceEncoder, build_backbone
from semrec_worker.methods import registry
from semrec_worker.training.config import SeqRecConfig, load_seqrec_config

MODEL_FILE = "model.pt"
# what earlier versions recorded in `parts.item_embedding` (the layer's Python class)
LEGACY_ITEM_LAYERS = {
    "torch.nn.modules.sparse:Embedding": "embedding",
    "semrec_worker.backbones.item_embedding:TableProjection": "table-projection",
    "semrec_worker.methods.llmemb.model:LLMEmbAdapter": "llmemb-adapter",
    "semrec_worker.methods.tslrec.model:GatedFusionEmbedding": "tslrec-gated-fusion",
}


def item_layer_name(kind: str | None, parts: dict[str, Any], seqrec: SeqRecConfig) -> str:
    """The item layer a run trained through: named in its `parts`, else implied by its config class (runs of
    earlier versions), else the seqrec trainer's own layer for its --init / --projection."""
    named = parts.get("item_layer") or LEGACY_ITEM_LAYERS.get(str(parts.get("item_embedding")))
    if named:
        return str(named)
    entry = registry.stage2_of_kind(kind) if kind else None
    if entry is not None and entry.item_layer is not None:
        return entry.item_layer.name
    return "table-projection" if seqrec.model.init != "random" and seqrec.model.projection == "linear" else "embedding"


def model_from_config(run: str | Path | JobConfig) -> SequenceEncoder:
    """The trained model of a run (eval mode, CPU): `run` is its directory (or its config.json), or its loaded
    config (`SeqRecConfig` or a stage-2 config; the weights are read from its `out`)."""
    if isinstance(run, JobConfig):
        seqrec = run if isinstance(run, SeqRecConfig) else getattr(run, "seqrec", None)
        if not isinstance(seqrec, SeqRecConfig):
            raise UserError(f"{type(run).__name__}: not a training config (no seqrec settings)")
        run_dir, kind = Path(seqrec.out), type(run).__name__
        saved = read_config_file(run_dir) if (run_dir / "config.json").exists() else {}
        parts = saved.get("parts", {}) if saved.get("kind") == kind else {}
    else:
        path = Path(run)
        run_dir = path if path.is_dir() else path.parent
        if not (run_dir / "config.json").exists():
            raise UserError(f"{run_dir}: not a training run (no config.json)")
        saved = read_config_file(run_dir)
        seqrec, kind, parts = load_seqrec_config(run_dir), saved.get("kind"), saved.get("parts") or {}
        if not isinstance(config_payload(saved), dict):
            raise UserError(f"{run_dir}/config.json: no settings")
    weights = run_dir / MODEL_FILE
    if not weights.exists():
        raise UserError(f"{run_dir}: no {MODEL_FILE} (the run has not finished)")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    name = item_layer_name(kind, parts, seqrec)
    layers = registry.item_layers()
    if name not in layers:
        raise UserError(f"{run_dir}: its item layer {name!r} is not one the registry can rebuild "
                        f"(known: {', '.join(sorted(layers))})")
    try:
        item_layer = layers[name].empty.load()(state)
    except KeyError as exc:
        raise UserError(f"{run_dir}/{MODEL_FILE} lacks {exc} for its {name!r} item layer") from exc
    backbone = str(parts.get("backbone") or seqrec.model.backbone)
    backbone = backbone if ":" not in backbone else seqrec.model.backbone  # earlier versions: a class name
    model = build_backbone(backbone, item_layer, **seqrec.model.backbone_settings())
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UserError(f"{run_dir}/{MODEL_FILE} does not match its config.json: {exc}") from exc
    return model.eval()
