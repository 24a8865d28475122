"""LLMEmb's SCFT settings, the configs of its two jobs and the names of the files its runs write (torch-free:
the CLI builds its flags from them, and the item table records them in its metadata)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, model_validator
from semrec.config import JobConfig, StrictModel
from semrec.vocabulary import AcceptsOldNames, OldName

from semrec_worker.core.lora import LLAMA_LORA_TARGETS
from semrec_worker.core.runtime import BF16_OLD_NAME, Precision
from semrec_worker.methods.base import RunDirConfig
from semrec_worker.training.config import SeqRecConfig

CHECKPOINT = "checkpoint.pt"  # the SCFT checkpoint in the run directory (resumed from)
ADAPTER_DIR = "adapter"
SCFT_PCA = "scft_pca.npz"  # the --dim PCA of the SCFT table (mean, components), for new items at refresh


class SCFTSettings(AcceptsOldNames, StrictModel):
    old_names: ClassVar[dict[str, str | OldName]] = {
        "time_budget_min": "max_train_minutes", "checkpoint_every": "checkpoint_every_steps", "bf16": BF16_OLD_NAME,
    }

    llm: str = Field("default", description="language model: 'default' (SmolLM2-135M), 'tiny', or a local HF dir")
    domain: str | None = Field(None, description="domain word in the prompt (default: from the dataset name)")
    max_value_chars: int = Field(100, ge=1, description="attribute values are cut to this many characters")
    max_prompt_tokens: int = Field(128, ge=8, description="prompt length cap (LM tokens)")
    drop_fraction: float = Field(0.4, ge=0, lt=1, description="share of attributes each view drops")
    lora_r: int = Field(8, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha")
    lora_dropout: float = Field(0.1, ge=0, lt=1, description="LoRA dropout")
    lora_targets: list[str] = Field(LLAMA_LORA_TARGETS, description="module names that get LoRA adapters")
    temperature: float = Field(0.05, gt=0, description="initial (learnable) contrastive temperature")
    batch_size: int = Field(32, ge=2, description="items per step (two views each)")
    lr: float = Field(2e-4, gt=0, description="AdamW learning rate (LoRA weights and temperature)")
    epochs: float = Field(1.0, gt=0, description="passes over the items (fractions allowed)")
    max_steps: int | None = Field(None, ge=0, description="stop after this many steps (overrides epochs)")
    max_train_minutes: float | None = Field(None, gt=0, description="wall-clock training budget: stop when spent")
    checkpoint_every_steps: int = Field(10, ge=1, description="checkpoint every N steps")
    precision: Precision = Field(
        "auto", description="bf16 autocast or fp32; auto = bf16 where native (CUDA, a CPU with AMX or AVX512-BF16), else fp32"
    )
    embed_batch_size: int = Field(32, ge=1, description="items per forward pass when embedding the catalogue")
    dim: int | None = Field(None, ge=1, description="PCA the output table to this width (None: LM width)")
    probe_items: int = Field(
        128, ge=0, description="items whose two attribute-dropped views must retrieve each other (before/after)"
    )
    embed_catalogue: bool = Field(True, description="embed every item into the item table after SCFT")
    seed: int = Field(0, description="batch order, attribute dropout and LoRA init")


class TrainLLMEmbConfig(RunDirConfig, SCFTSettings):
    adapter: Path | None = Field(
        None, description="skip SCFT: embed with this saved LoRA adapter (a run's adapter/ folder)"
    )


class RATSettings(StrictModel):
    """RAT's own settings (eqs. 6-8): which tables it builds on, the adapter's input width, the alignment loss."""

    scft: str = Field(..., description="SCFT item table (.npz, or the run dir of `semrec train llmemb`)")
    collaborative: str = Field(
        ..., description="item table of a pretrained SASRec (its run dir) that the alignment loss pulls towards"
    )
    d_m: int | None = Field(
        None, ge=2, description="PCA width of the frozen LLM embeddings (the adapter's input, eq. 6); at least the "
        "backbone width --dim (the paper: an intermediate size significantly larger than SRS embeddings); "
        "None: the SCFT table's width (576 for SmolLM2, no reduction)",
    )
    alpha: float = Field(0.01, ge=0, description="weight of the collaborative alignment loss (eq. 8)")
    align_temperature: float = Field(2.0, gt=0, description="temperature of the alignment InfoNCE (eq. 7)")


class TrainRATConfig(JobConfig):
    """`semrec train llmemb-rat`: a seqrec run (its backbone, optimisation, data, ...) plus RAT's settings."""

    seqrec: SeqRecConfig = Field(default_factory=dict, validate_default=True)  # missing settings: named by flag
    rat: RATSettings = Field(default_factory=dict, validate_default=True)  # missing settings: named by flag

    @model_validator(mode="after")
    def _own_item_layer(self) -> TrainRATConfig:
        model = self.seqrec.model
        if model.init != "random" or model.freeze_items or model.projection != "pca":
            raise ValueError("RAT builds its own item layer (adapter over --scft): leave --init/--freeze-items/--projection")
        return self
