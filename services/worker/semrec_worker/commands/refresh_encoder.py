"""`semrec export refresh-encoder --run RUN_DIR`: (re)build a finished run's method refresh encoder.

`semrec train llmemb-rat` and SAID-initialised `semrec train seqrec` runs save theirs when they finish; this
builds it for runs trained before that, or after its inputs moved. The text map for any run comes from
`semrec publish --refresh-encoder minilm|hashing`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field
from semrec.cli_builder import CommandGroups, config_command
from semrec.config import JobConfig
from semrec.errors import UserError
from semrec.item_table import ItemTable

from semrec_worker.data.dataset import load_dataset
from semrec_worker.methods.llmemb.job import TrainRATConfig
from semrec_worker.methods.llmemb.refresh_encoder import save_rat_encoder
from semrec_worker.methods.said.refresh_encoder import said_source, save_stage2_encoder
from semrec_worker.training.config import load_seqrec_config


class ExportRefreshEncoderConfig(JobConfig):
    run: Path = Field(..., description="a finished `semrec train llmemb-rat` or `semrec train seqrec --init <SAID>` run")
    kind: Literal["auto", "llmemb", "said"] = Field(
        "auto", description="encoder to build (auto: llmemb for a RAT run, said for a SAID-initialised run)"
    )


def run_kind(payload: dict) -> str | None:
    if "scft" in payload:
        return "llmemb"
    return "said" if said_source(str(payload.get("init", "random"))) is not None else None


def export_refresh_encoder(config: ExportRefreshEncoderConfig) -> Path:
    import torch  # torch only when the command runs, not for `semrec --help`

    run = config.run
    needed = [run / n for n in ("config.json", "model.pt", "item_table.npz", "metrics.json")]
    if any(not p.exists() for p in needed):
        raise UserError(f"{run}: not a finished training run (needs config.json, model.pt, item_table.npz, metrics.json)")
    payload = json.loads((run / "config.json").read_text())
    payload = payload.get("config", payload)
    kind = run_kind(payload) if config.kind == "auto" else config.kind
    if kind is None or (config.kind != "auto" and run_kind(payload) != config.kind):
        raise UserError(f"{run}: neither a RAT run (llmemb) nor a seqrec run initialised from a SAID table (said); "
                        "for a text map use `semrec publish --refresh-encoder minilm|hashing`")  # fmt: skip
    state = torch.load(run / "model.pt", map_location="cpu", weights_only=True)
    item_table = ItemTable.load(run / "item_table.npz")
    if kind == "llmemb":
        from semrec_worker.methods.llmemb.model import LLMEmbAdapter  # torch

        rat = TrainRATConfig.load(run)
        dataset = load_dataset(rat)
        scft_table = ItemTable.load(rat.scft)
        adapter = LLMEmbAdapter.from_table(scft_table, dataset, width=rat.dim, d_m=rat.d_m)
        prefix = "item_embedding.project."
        adapter.project.load_state_dict({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)})
        path = save_rat_encoder(run, rat.scft, scft_table, adapter, item_table)
    else:
        from types import SimpleNamespace

        seqrec = load_seqrec_config(run)
        dataset = load_dataset(seqrec)
        linear = None
        if seqrec.projection == "linear":
            weight = state["item_embedding.linear.weight"]
            linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
            linear.load_state_dict({"weight": weight, "bias": state["item_embedding.linear.bias"]})
        model = SimpleNamespace(item_embedding=SimpleNamespace(linear=linear))
        path = save_stage2_encoder(run, seqrec, dataset, model, item_table)
    if path is None:
        raise UserError(f"{run}: no {kind} refresh encoder could be built (see the note above)")
    return path


def register(groups: CommandGroups) -> None:
    config_command(groups.export, "refresh-encoder", ExportRefreshEncoderConfig, export_refresh_encoder,
                   "Build a finished run's refresh encoder (llmemb for RAT runs, said for SAID-initialised runs) "
                   "into RUN_DIR/refresh_encoder/ for `semrec refresh`.")  # fmt: skip
