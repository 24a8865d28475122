"""`semrec export refresh-encoder --run RUN_DIR`: (re)build a finished run's method refresh encoder.

`semrec train llmemb-rat` and SAID-initialised `semrec train seqrec` runs save theirs when they finish, and
`semrec export onnx` writes the `item-layer` encoder of an `--item-layer frozen|dual` run; this builds them
for runs trained before that, or after their inputs moved. The text map for any run comes from
`semrec publish --refresh-encoder minilm|hashing`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from semrec.cli_builder import CommandGroups, config_command
from semrec.config import JobConfig, read_flat_config
from semrec.errors import UserError
from semrec.item_table import ItemTable

from semrec_worker.methods import registry
from semrec_worker.refresh.encoders import ItemLayerEncoder
from semrec_worker.refresh.item_layer import save_item_layer_encoder


class ExportRefreshEncoderConfig(JobConfig):
    run: Path = Field(..., description="a finished `semrec train llmemb-rat` run, or a `semrec train seqrec` run "
                                       "initialised from a SAID table or trained with `--item-layer frozen|dual`")
    kind: Literal["auto", "llmemb", "said", "item-layer"] = Field(
        "auto", description="encoder to build (auto: llmemb for a RAT run, said for a SAID-initialised run, "
                            "item-layer for another frozen/dual run)"
    )


def method_encoders() -> dict[str, Any]:
    """The refresh encoder class of every method that has one (registry), by kind."""
    return {s.name: s.refresh_encoder.load() for s in registry.SPECS.values() if s.refresh_encoder is not None}


def export_refresh_encoder(config: ExportRefreshEncoderConfig) -> Path:
    import torch  # torch only when the command runs, not for `semrec --help`

    run = config.run
    needed = [run / n for n in ("config.json", "model.pt", "item_table.npz", "metrics.json")]
    if any(not p.exists() for p in needed):
        raise UserError(f"{run}: not a finished training run (needs config.json, model.pt, item_table.npz, metrics.json)")
    payload = read_flat_config(run)  # by leaf name, nested or flat (earlier versions)
    encoders = method_encoders()
    detected = next((kind for kind, encoder in encoders.items() if encoder.built_for(payload)), None)
    own_item_layer = payload.get("item_layer", "init") in ("frozen", "dual")
    if config.kind == ItemLayerEncoder.kind or (config.kind == "auto" and detected is None and own_item_layer):
        return _item_layer_encoder(run, own_item_layer)
    kind = detected if config.kind == "auto" else config.kind
    if kind is None or (config.kind != "auto" and detected != config.kind):
        raise UserError(f"{run}: not a RAT run (llmemb), a seqrec run initialised from a SAID table (said) nor a "
                        "frozen/dual item-layer run (item-layer); for a text map use "
                        "`semrec publish --refresh-encoder minilm|hashing`")
    state = torch.load(run / "model.pt", map_location="cpu", weights_only=True)
    path = encoders[kind].rebuild(run, state, ItemTable.load(run / "item_table.npz"))
    if path is None:
        raise UserError(f"{run}: no {kind} refresh encoder could be built (see the note above)")
    return path


def _item_layer_encoder(run: Path, own_item_layer: bool) -> Path:
    if not own_item_layer:
        raise UserError(f"{run}: --kind item-layer needs a run trained with --item-layer frozen|dual")
    path = save_item_layer_encoder(run, rebuild=True)
    if path is None:
        raise UserError(f"{run}: no item-layer refresh encoder could be built (see the note above; a run with "
                        "--refresh-text-encoder none has none)")
    return path


def register(groups: CommandGroups) -> None:
    config_command(groups.export, "refresh-encoder", ExportRefreshEncoderConfig, export_refresh_encoder,
                   "Build a finished run's refresh encoder (llmemb for RAT runs, said for SAID-initialised runs, "
                   "item-layer for frozen/dual item-layer runs) "
                   "into RUN_DIR/refresh_encoder/ for `semrec refresh`.")
