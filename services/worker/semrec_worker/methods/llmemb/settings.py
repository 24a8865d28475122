"""LLMEmb's SCFT settings, the configs of its two jobs and the names of the files its runs write (torch-free:
the CLI builds its flags from them, and the item table records them in its metadata)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator
from semrec.config import JobConfig, StrictModel
from semrec.vocabulary import AcceptsOldNames, OldName

from semrec_worker.core.lora import LLAMA_LORA_TARGETS
from semrec_worker.core.runtime import BF16_OLD_NAME, Precision
from semrec_worker.methods.base import RunDirConfig
from semrec_worker.training.config import SeqRecConfig
from semrec_worker.training.item_layer import ItemLayerSettings

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
    lora_top_layers: int | None = Field(
        None, ge=1, description="LoRA only in the LM's last N layers (None: all); the frozen layers below run without "
        "autograd, so a step's backward pass is that much cheaper (forward cost is unchanged)",
    )
    similarity: Literal["dot", "cosine"] = Field(
        "dot", description="similarity of the two views (eq. 4); the paper: the inner product"
    )
    exclude_positive: bool = Field(
        True, description="take the positive out of the denominator (eq. 4's indicator I[i != k]); off: plain InfoNCE"
    )
    temperature: float | None = Field(
        None, gt=0, description="initial value of the trainable temperature (eq. 4); None: 0.05 for cosine, and for "
        "dot the first batch's mean squared embedding norm / 20 (so that the initial logits are O(10))",
    )
    batch_size: int = Field(64, ge=2, description="items per step (two views each): the in-batch negatives")
    forward_chunk: int = Field(
        32, ge=1, description="sequences per LM forward inside a step, grouped by token length (less padding, "
        "bounded memory); the loss still sees the whole batch",
    )
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
    align_temperature: float = Field(2.0, gt=0, description="temperature gamma of the alignment loss (eq. 7)")
    align_similarity: Literal["auto", "dot", "cosine"] = Field(
        "auto", description="similarity of the alignment (eq. 7); auto: the one the collaborative SASRec was "
        "trained with (its loss), so the two are compared as they were learned",
    )


RAT_DEFAULT_LOSS = "bce"  # L_SRS of eq. 8: the paper's SASRec trains with binary cross-entropy
RAT_ITEM_LAYER_SETTINGS = ("adapter_start",)  # the only item-layer setting RAT's adapter takes (its start)


class TrainRATConfig(JobConfig):
    """`semrec train llmemb-rat`: a seqrec run (its backbone, optimisation, data, ...) plus RAT's settings.

    The backbone's loss (--loss) defaults to the paper's, BCE, when none is given (the quality grid passes its
    own, the same for every cell)."""

    seqrec: SeqRecConfig = Field(default_factory=dict, validate_default=True)  # missing settings: named by flag
    rat: RATSettings = Field(default_factory=dict, validate_default=True)  # missing settings: named by flag

    @model_validator(mode="before")
    @classmethod
    def _paper_loss_by_default(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "loss" in data:
            return data
        seqrec = data.get("seqrec")
        if isinstance(seqrec, SeqRecConfig):
            return data  # an already built seqrec part keeps what it has
        if isinstance(seqrec, dict):
            objective = seqrec.get("objective")
            if "loss" in seqrec or (isinstance(objective, dict) and "loss" in objective) or hasattr(objective, "loss"):
                return data
        return {**data, "loss": RAT_DEFAULT_LOSS}

    @model_validator(mode="after")
    def _own_item_layer(self) -> TrainRATConfig:
        model = self.seqrec.model
        if model.init != "random" or model.freeze_items or model.projection != "pca":
            raise ValueError("RAT builds its own item layer (adapter over --scft): leave --init/--freeze-items/--projection")
        defaults = ItemLayerSettings()
        ignored = [name for name in type(defaults).model_fields
                   if name not in RAT_ITEM_LAYER_SETTINGS and getattr(model.items, name) != getattr(defaults, name)]
        if ignored:
            flags = ", ".join("--" + name.replace("_", "-") for name in ignored)
            raise ValueError(f"RAT builds its own item layer (adapter over --scft, hidden width d_m / 2): {flags} "
                             "would be ignored; of the item-layer settings it takes only --adapter-start")
        return self
