"""SAID's settings, importable without torch (the CLI builds its flags from them)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from semrec.config import StrictModel, invocation_field
from semrec.vocabulary import AcceptsOldNames, OldName

from semrec_worker.data.dataset import DataConfig
from semrec_worker.data.text import CAPTION_FIELDS, CAPTION_MAX_TOKENS

ProjectorKind = Literal["auto", "table", "amortised"]


class SAIDSettings(AcceptsOldNames, StrictModel):
    """The method's settings (recorded in the item table's metadata)."""

    # `--init` is the seqrec trainer's item table; SAID's prefix initialisation has its own name
    old_names: ClassVar[dict[str, str | OldName]] = {"init": "prefix_init"}

    projector: ProjectorKind = Field(
        "auto", description="f_theta: 'table' (the paper's lookup table), 'amortised' (MLP from caption text + "
        "per-item residual), 'auto' = table on GPU, amortised on CPU",
    )
    virtual_tokens: int = Field(4, ge=1, le=64, description="K prefix vectors (virtual tokens) per item")
    instruction: str = Field("Item:", description="fixed text before the prefix ('' for none)")
    prefix_init: Literal["mean", "random"] = Field(
        "mean", description="prefix initialisation: the caption's mean token embedding, or random"
    )
    caption_fields: list[str] = Field(
        list(CAPTION_FIELDS), description="item attributes in the caption (the paper: title, category and brand)"
    )
    max_caption_tokens: int = Field(
        CAPTION_MAX_TOKENS, ge=2, description="caption length cap in LM tokens (EOS added; the default keeps 95% "
        "of Scientific's captions whole, docs/said.md)",
    )
    projector_hidden: int = Field(1024, ge=8, description="hidden width of the amortised projector's MLP")
    table_vectors: Literal["concat", "mean"] = Field(
        "concat", description="item table rows: the K prefix vectors concatenated (K x width) or averaged"
    )


class TrainSAIDConfig(DataConfig, SAIDSettings):
    """`semrec train said`: stage 1 on a dataset's item captions, written to a run directory."""

    old_names: ClassVar[dict[str, str | OldName]] = {
        "time_budget_min": "max_train_minutes", "checkpoint_every_min": "checkpoint_every_minutes",
        "eval_every_min": "eval_every_minutes",
        # `--resume` is on/off on the seqrec trainer; SAID continues a run given by its directory
        "resume": "resume_from",
    }

    llm: str = Field("default", description="causal LM: 'default' (SmolLM2-135M), 'tiny' (tests) or a local HF dir")
    out: Path | None = Field(None, description="run directory (checkpoint, metrics, plot, item_table.npz)")
    resume_from: Path | None = invocation_field(
        None, "continue the run in this directory from its checkpoint (with --out: write the result there)"
    )
    only_new: bool = Field(
        False, description="with --resume-from: train rows only for items absent from the run's table (others fixed)"
    )
    epochs: int = Field(10, ge=0, description="passes over the items (early stop may end sooner)")
    batch_size: int | None = Field(None, ge=1, description="items per step (default 16 on CPU, 64 on GPU)")
    lr_rows: float = Field(1e-2, gt=0, description="SparseAdam learning rate of the per-item rows")
    lr_projector: float = Field(1e-3, gt=0, description="Adam learning rate of the amortised projector's MLP")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="bf16 autocast or fp32; auto = bf16 on CUDA and on CPUs with native bf16 (AMX or "
        "AVX512-BF16), fp32 on other CPUs (they emulate bf16 matmuls, several times slower: docs/said.md)",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where to train")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")
    max_items: int | None = Field(None, ge=1, description="train only the first N items (probes; others keep init)")
    eval_items: int = Field(64, ge=1, description="items whose captions are decoded for generation accuracy")
    patience: int = Field(2, ge=1, description="early stop after this many epochs without accuracy gain")
    min_delta: float = Field(0.005, ge=0, description="the smallest word-accuracy gain that counts")
    max_train_minutes: float | None = Field(None, gt=0, description="wall-clock training budget: stop when spent")
    checkpoint_every_minutes: float = Field(5.0, gt=0, description="checkpoint this often within an epoch")
    eval_every_minutes: float | None = Field(
        None, gt=0, description="also measure generation accuracy this often within an epoch (long epochs)"
    )
    seed: int = Field(0, description="batch order, eval sample and random init")
    snapshot_tables: bool = Field(
        False, description="also export the table at step 0 and at every evaluation to OUT/snapshots/step<N>/ "
        "(index.json: step, epoch, items seen, accuracy; `semrec bench said-gain` trains stage 2 from each)",
    )


# settings that a resumed run may change; everything else must match the checkpoint
RESUMABLE = {
    "resume_from", "only_new", "out", "epochs", "max_train_minutes", "patience", "min_delta", "checkpoint_every_minutes",
    "eval_every_minutes", "snapshot_tables",
    "threads", "device", "data", "format", "kcore", "history_cap", "drop_unknown_items", "eval_items",
}
