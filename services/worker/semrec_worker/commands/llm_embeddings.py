"""`semrec train lh|llm2x|llmemb`, `semrec eval llmseqsim` and `semrec bench embed`.

Every `train` command writes a run directory: `config.json`, `item_table.npz` (the ItemTable a backbone
takes with `--init`), and for LLMEmb also the LoRA `adapter/`, `checkpoint.pt`, `history.json` and
`scft_loss.png`. Torch and transformers are imported inside the run functions so `semrec --help` is fast.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field
from semrec.cli_builder import CommandGroups, config_command, echo

from semrec_worker.commands.evaluate import EvalJobConfig
from semrec_worker.data.dataset import DataConfig, SequenceDataset
from semrec_worker.lm.backends import MINILM
from semrec_worker.methods.llm_settings import LHSettings, LLM2XSettings, LLMSeqSimSettings, SCFTSettings
from semrec_worker.training.config import SeqRecConfig


class RunDirConfig(DataConfig):
    out: Path | None = Field(None, description="run directory (default runs/<method>-<dataset>-<time>)")


class TrainLHConfig(RunDirConfig, LHSettings):
    pass


class TrainLLM2XConfig(RunDirConfig, LLM2XSettings):
    pass


class TrainLLMEmbConfig(RunDirConfig, SCFTSettings):
    adapter: Path | None = Field(
        None, description="skip SCFT: embed with this saved LoRA adapter (a run's adapter/ folder)"
    )


class TrainRATConfig(SeqRecConfig):
    scft: str = Field(..., description="SCFT item table (.npz, or the run dir of `semrec train llmemb`)")
    collaborative: str = Field(
        ..., description="item table of a pretrained SASRec (its run dir) that the alignment loss pulls towards"
    )
    d_m: int = Field(128, ge=2, description="PCA width of the frozen LLM embeddings (the adapter's input, eq. 6)")
    alpha: float = Field(0.01, ge=0, description="weight of the collaborative alignment loss (eq. 8)")
    align_temperature: float = Field(2.0, gt=0, description="temperature of the alignment InfoNCE (eq. 7)")


class EvalLLMSeqSimConfig(EvalJobConfig, LLMSeqSimSettings):
    table: Path | None = Field(
        None, description="item table (.npz or run dir) to use; default: embed captions with --text-encoder"
    )
    text_encoder: str = Field(MINILM, description="'minilm' (packaged all-MiniLM-L6-v2), 'tiny' or a local ST dir")
    save_table: Path | None = Field(None, description="also save the computed text embeddings as an item table")


BackendName = Literal["transformers-mean", "transformers-last", "sentence-transformers", "vllm-mean", "vllm-last"]


class BenchEmbedConfig(DataConfig):
    llm: str = Field("default", description="language model of the transformers / vllm backends")
    backends: list[BackendName] = Field(
        ["transformers-mean", "transformers-last", "sentence-transformers", "vllm-mean"],
        description="backends to time (vllm ones are skipped without CUDA+vllm)",
    )
    bf16: list[bool] = Field([False, True], description="bf16 autocast settings to time (transformers backends)")
    n_items: int = Field(256, ge=1, description="captions embedded per measurement")
    batch_size: int = Field(32, ge=1, description="texts per forward pass")
    max_tokens: int = Field(64, ge=4, description="caption length cap (tokens)")
    warmup_batches: int = Field(1, ge=0, description="untimed batches before each measurement")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")
    results: Path = Field(Path("results/embed-throughput.json"), description="results JSON to write")


def run_dir(config: RunDirConfig, method: str, dataset: SequenceDataset) -> Path:
    if config.out is not None:
        return config.out
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{method}-{dataset.name}-{stamp}"


def _save_table(table, config: RunDirConfig, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    config.save(out)
    path = table.save(out / "item_table.npz")
    echo(f"{table.metadata['method']}: {len(table)} items x {table.dim} -> {path}")
    return path


def train_lh(config: TrainLHConfig):
    from semrec_worker.data.dataset import load_dataset
    from semrec_worker.methods.lh import LastHiddenState

    dataset = load_dataset(config)
    table = LastHiddenState(LHSettings(**_subset(config, LHSettings))).fit(dataset)
    return _save_table(table, config, run_dir(config, "lh", dataset))


def train_llm2x(config: TrainLLM2XConfig):
    from semrec_worker.data.dataset import load_dataset
    from semrec_worker.methods.llm2x import LLM2X

    dataset = load_dataset(config)
    table = LLM2X(LLM2XSettings(**_subset(config, LLM2XSettings))).fit(dataset)
    return _save_table(table, config, run_dir(config, "llm2x", dataset))


def train_llmemb(config: TrainLLMEmbConfig):
    from semrec_worker.data.dataset import load_dataset
    from semrec_worker.methods.llmemb.model import CHECKPOINT, LLMEmbSCFT

    dataset = load_dataset(config)
    out = run_dir(config, "llmemb", dataset)
    out.mkdir(parents=True, exist_ok=True)
    if (out / CHECKPOINT).exists() and config.adapter is None:
        echo(f"resuming SCFT from {out / CHECKPOINT}")
    config.save(out)
    method = LLMEmbSCFT(SCFTSettings(**_subset(config, SCFTSettings)), run_dir=out, adapter=config.adapter)
    table = method.fit(dataset)
    if method.result is not None:
        r = method.result
        first = r.history[0]["loss"] if r.history else None
        last = r.history[-1]["loss"] if r.history else None
        echo(f"SCFT: {r.steps} steps (stopped: {r.stopped}), loss {first} -> {last}, "
             f"view retrieval on held-out items {r.probe.get('before')} -> {r.probe.get('after')}")  # fmt: skip
    if table is None:
        echo(f"adapter and metrics in {out} (no item table: --no-embed-catalogue)")
        return out
    return _save_table(table, config, out)


def train_llmemb_rat(config: TrainRATConfig):
    from semrec.errors import UserError
    from semrec.item_table import ItemTable

    from semrec_worker.methods.llmemb.model import train_rat

    if config.init != "random" or config.freeze_items or config.projection != "pca":
        raise UserError("RAT builds its own item layer (adapter over --scft): leave --init/--freeze-items/--projection")
    return train_rat(
        config, ItemTable.load(config.scft), ItemTable.load(config.collaborative), config.d_m, config.alpha,
        config.align_temperature, scft_source=config.scft,
    )  # fmt: skip


def _subset(config, settings_cls) -> dict:
    return {name: getattr(config, name) for name in settings_cls.model_fields}


def eval_llmseqsim(config: EvalLLMSeqSimConfig):
    from semrec.item_table import ItemTable
    from semrec.results import write_results

    from semrec_worker.commands.evaluate import evaluate_runs
    from semrec_worker.data.text import caption
    from semrec_worker.data.dataset import load_dataset
    from semrec_worker.lm.backends import text_encoder
    from semrec_worker.methods.llmseqsim import LLMSeqSim

    dataset = load_dataset(config)
    start = time.perf_counter()
    if config.table is not None:
        table = ItemTable.load(config.table)
        source = str(table.metadata.get("method", "table"))
        if source == "llmemb" and table.metadata.get("scft_steps") == 0:
            source = "llmemb-untuned"  # the LLMEmb prompt, mean-pooled, without SCFT
        fingerprint = table.metadata.get("dataset_fingerprint")
        if fingerprint not in (None, dataset.fingerprint):
            echo(f"warning: the table was made for dataset {fingerprint}, this one is {dataset.fingerprint}")
    else:
        encoder = text_encoder(config.text_encoder)
        vectors = encoder.embed([caption(item) for item in dataset.items])
        table = ItemTable(dataset.item_ids, vectors, {"method": "text", "lm": encoder.name, "dataset": dataset.name,
                                                     "dataset_fingerprint": dataset.fingerprint})  # fmt: skip
        source = config.text_encoder
        if config.save_table is not None:
            echo(f"text embeddings saved to {table.save(config.save_table)}")
    embed_s = time.perf_counter() - start
    runs = []
    for combine in config.combine:
        model = LLMSeqSim.from_table(
            table, dataset, combine=combine, decay=config.decay, window=config.window,
            skip_history=config.skip_history,
        )  # fmt: skip
        runs += evaluate_runs(
            model, dataset, config, f"llmseqsim-{combine}[{source}]", train_s=embed_s,
            extra_config={"embedding": source, "embedding_dim": table.dim, "embedding_lm": table.metadata.get("lm"),
                          "combine": combine},
        )  # fmt: skip
    out = config.out or Path("results") / f"llmseqsim-{source}-{dataset.name}.json"
    write_results(out, runs)
    echo(f"results written to {out}")
    return runs


def bench_embed(config: BenchEmbedConfig):
    from semrec_worker.lm.bench import run_embed_bench

    return run_embed_bench(config)


def register(groups: CommandGroups) -> None:
    config_command(
        groups.train,
        "lh",
        TrainLHConfig,
        train_lh,
        "LH baseline: item = the LM's last hidden state of its caption (ItemTable in the run directory).",
    )
    config_command(
        groups.train,
        "llm2x",
        TrainLLM2XConfig,
        train_llm2x,
        "LLM2X: text-encoder embeddings of the captions, PCA to the backbone width (ItemTable).",
    )
    config_command(
        groups.train,
        "llmemb",
        TrainLLMEmbConfig,
        train_llmemb,
        "LLMEmb stage 1 (SCFT): LoRA contrastive fine-tuning of the LM on attribute-dropped item prompts, "
        "then mean-pooled item embeddings (adapter + ItemTable; resumes from the run's checkpoint).",
    )
    config_command(
        groups.train,
        "llmemb-rat",
        TrainRATConfig,
        train_llmemb_rat,
        "LLMEmb stage 2 (RAT): train a backbone through a two-layer adapter over the frozen, PCA'd SCFT "
        "embeddings, plus alpha x collaborative alignment to a pretrained SASRec's item embeddings.",
    )
    config_command(
        groups.eval,
        "llmseqsim",
        EvalLLMSeqSimConfig,
        eval_llmseqsim,
        "LLMSeqSim: rank items by cosine to the session's mean / last / decayed text embedding (no training).",
    )
    config_command(
        groups.bench,
        "embed",
        BenchEmbedConfig,
        bench_embed,
        "Embedding throughput (items/s) of each backend on this machine, bf16 autocast on and off.",
    )
