"""`semrec export refresh-encoder --run RUN_DIR`: (re)build a finished run's method refresh encoder.

`semrec train llmemb-rat` and SAID-initialised `semrec train seqrec` runs save theirs when they finish; this
builds it for runs trained before that, or after its inputs moved. The text map for any run comes from
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


class ExportRefreshEncoderConfig(JobConfig):
    run: Path = Field(..., description="a finished `semrec train llmemb-rat` or `semrec train seqrec --init <SAID>` run")
    kind: Literal["auto", "llmemb", "said"] = Field(
        "auto", description="encoder to build (auto: llmemb for a RAT run, said for a SAID-initialised run)"
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
    kind = detected if config.kind == "auto" else config.kind
    if kind is None or (config.kind != "auto" and detected != config.kind):
        raise UserError(f"{run}: neither a RAT run (llmemb) nor a seqrec run initialised from a SAID table (said); "
                        "for a text map use `semrec publish --refresh-encoder minilm|hashing`")
    state = torch.load(run / "model.pt", map_location="cpu", weights_only=True)
    path = encoders[kind].rebuild(run, state, ItemTable.load(run / "item_table.npz"))
    if path is None:
        raise UserError(f"{run}: no {kind} refresh encoder could be built (see the note above)")
    return path


def register(groups: CommandGroups) -> None:
    config_command(groups.export, "refresh-encoder", ExportRefreshEncoderConfig, export_refresh_encoder,
                   "Build a finished run's refresh encoder (llmemb for RAT runs, said for SAID-initialised runs) "
                   "into RUN_DIR/refresh_encoder/ for `semrec refresh`.")
