"""The LLMEmb jobs: `semrec train llmemb` (SCFT -> item table) and `semrec train llmemb-rat` (RAT).

The configs are importable without torch (the CLI builds its flags from them); each run function imports
the torch code it runs.
"""

from __future__ import annotations

from pathlib import Path

from semrec.cli_builder import echo
from semrec.item_table import ItemTable

from semrec_worker.data.dataset import load_dataset
from semrec_worker.methods.base import run_dir, save_table, settings_of
from semrec_worker.methods.llmemb.settings import CHECKPOINT, SCFTSettings, TrainLLMEmbConfig, TrainRATConfig


def train_llmemb(config: TrainLLMEmbConfig) -> Path:
    from semrec_worker.methods.llmemb.model import LLMEmbSCFT  # torch only when the job runs

    dataset = load_dataset(config)
    out = run_dir(config, "llmemb", dataset)
    out.mkdir(parents=True, exist_ok=True)
    if (out / CHECKPOINT).exists() and config.adapter is None:
        echo(f"resuming SCFT from {out / CHECKPOINT}")
    config.save(out)
    method = LLMEmbSCFT(settings_of(config, SCFTSettings), run_dir=out, adapter=config.adapter)
    table = method.fit(dataset)
    if method.result is not None:
        r = method.result
        first = r.history[0]["loss"] if r.history else None
        last = r.history[-1]["loss"] if r.history else None
        echo(f"SCFT: {r.steps} steps (stopped: {r.stopped}), loss {first} -> {last}, "
             f"view retrieval on held-out items {r.probe.get('before')} -> {r.probe.get('after')}")
    if table is None:
        echo(f"adapter and metrics in {out} (no item table: --no-embed-catalogue)")
        return out
    return save_table(table, config, out)


def train_llmemb_rat(config: TrainRATConfig):
    from semrec_worker.methods.llmemb.rat import train_rat  # torch only when the job runs

    rat = config.rat
    return train_rat(
        config.seqrec, ItemTable.load(rat.scft), ItemTable.load(rat.collaborative), rat.d_m, rat.alpha,
        rat.align_temperature, scft_source=rat.scft, job=config, similarity=rat.align_similarity,
    )
