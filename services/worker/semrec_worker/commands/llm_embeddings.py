"""`semrec eval llmseqsim` and `semrec bench embed` (`semrec train lh|llm2x|llmemb`: `train_tables`, and
`semrec train seqrec|llmemb-rat|tslrec`: `train_stage2`, both from the method registry).

Every `train` command writes a run directory: `config.json`, `item_table.npz` (the ItemTable a backbone
takes with `--init`), and for LLMEmb also the LoRA `adapter/`, `checkpoint.pt`, `history.json` and
`scft_loss.png`; the jobs themselves live with their methods (`semrec_worker.methods`). Torch and
transformers are imported inside the run functions so `semrec --help` is fast.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, TypeAdapter
from semrec.cli_builder import CommandGroups, config_command, echo
from semrec.item_table import ItemTable
from semrec.results import write_results
from semrec.vocabulary import OldName

from semrec_worker.core.checks import require_existing
from semrec_worker.core.runtime import Precision, precision_of
from semrec_worker.data.dataset import DataConfig, load_dataset
from semrec_worker.evaluation.jobs import EvalJobConfig, evaluate_runs
from semrec_worker.lm.backends import MINILM
from semrec_worker.lm.bench import run_embed_bench
from semrec_worker.methods.llm_settings import LLMSeqSimSettings


class EvalLLMSeqSimConfig(EvalJobConfig, LLMSeqSimSettings):
    table: Path | None = Field(
        None, description="item table (.npz or run dir) to use; default: embed captions with --text-encoder"
    )
    text_encoder: str = Field(MINILM, description="'minilm' (packaged all-MiniLM-L6-v2), 'tiny' or a local ST dir")
    save_table: Path | None = Field(None, description="also save the computed text embeddings as an item table")
    threads: int | None = Field(None, ge=1, description="CPU threads of the text encoder and the scoring (default: torch's choice)")


BackendName = Literal["transformers-mean", "transformers-last", "sentence-transformers", "vllm-mean", "vllm-last"]


def _precisions_of_bf16(values: Any) -> dict[str, list[Precision]]:
    """The old `--bf16 false,true` list (bools, or their spellings from the command line) as precisions."""
    return {"precision": [precision_of(bool(v)) for v in TypeAdapter(list[bool]).validate_python(values)]}


class BenchEmbedConfig(DataConfig):
    llm: str = Field("default", description="language model of the transformers / vllm backends")
    backends: list[BackendName] = Field(
        ["transformers-mean", "transformers-last", "sentence-transformers", "vllm-mean"],
        description="backends to time (vllm ones are skipped without CUDA+vllm)",
    )
    old_names: ClassVar[dict[str, str | OldName]] = {"bf16": OldName("precision", _precisions_of_bf16)}

    precision: list[Precision] = Field(
        ["fp32", "bf16"], description="precisions to time (transformers backends; auto = bf16 where native)"
    )
    n_items: int = Field(256, ge=1, description="captions embedded per measurement")
    batch_size: int = Field(32, ge=1, description="texts per forward pass")
    max_tokens: int = Field(64, ge=4, description="caption length cap (tokens)")
    warmup_batches: int = Field(1, ge=0, description="untimed batches before each measurement")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")
    results: Path = Field(Path("results/embed-throughput.json"), description="results JSON to write")


def eval_llmseqsim(config: EvalLLMSeqSimConfig):
    from semrec_worker.core.runtime import apply_threads
    from semrec_worker.methods.llmseqsim import caption_table, select_on_valid  # torch only when the job runs

    require_existing("--table", config.table, "no such item table or run directory")
    apply_threads(config.threads)
    dataset = load_dataset(config)
    start = time.perf_counter()
    if config.table is not None:
        table = ItemTable.load(config.table)
        source = str(table.metadata.get("method", "table"))
        if source == "text" and "minilm" in str(table.metadata.get("lm", "")).lower():
            source = MINILM  # saved by --save-table: the same embeddings as --text-encoder minilm
        if source == "llmemb" and table.metadata.get("scft_steps") == 0:
            source = "llmemb-untuned"  # the LLMEmb prompt, mean-pooled, without SCFT
        fingerprint = table.metadata.get("dataset_fingerprint")
        if fingerprint not in (None, dataset.fingerprint):
            echo(f"warning: the table was made for dataset {fingerprint}, this one is {dataset.fingerprint}")
    else:
        table, source = caption_table(dataset, config.text_encoder), config.text_encoder
        if config.save_table is not None:
            echo(f"text embeddings saved to {table.save(config.save_table)}")
    embed_s = time.perf_counter() - start
    selection = select_on_valid(table, dataset, config.combine, config.similarity,
                                exclude_history=config.exclude_history, decay=config.decay, window=config.window,
                                skip_history=config.skip_history)
    echo(f"chosen on validation: {selection.chosen} ({selection.valid_scores[selection.chosen]:.4f}); test read once")
    runs = evaluate_runs(
        selection.model, dataset, config, f"llmseqsim-{selection.chosen}[{source}]",
        train_s=embed_s + selection.wall_s,
        extra_config={"embedding": source, "embedding_dim": table.dim, "embedding_lm": table.metadata.get("lm"),
                      **selection.record()},
    )
    out = config.results or Path("results") / f"llmseqsim-{source}-{dataset.name}.json"
    write_results(out, runs)
    echo(f"results written to {out}")
    return runs


def bench_embed(config: BenchEmbedConfig):
    return run_embed_bench(config)


def register(groups: CommandGroups) -> None:
    config_command(
        groups.eval,
        "llmseqsim",
        EvalLLMSeqSimConfig,
        eval_llmseqsim,
        "LLMSeqSim (no training): every session aggregation (mean / linear / decay / last) x similarity (cosine / dot / "
        "euclidean) scored on validation NDCG@10; the best one evaluated on test.",
    )
    config_command(
        groups.bench,
        "embed",
        BenchEmbedConfig,
        bench_embed,
        "Embedding throughput (items/s) of each backend on this machine, bf16 autocast on and off.",
    )
