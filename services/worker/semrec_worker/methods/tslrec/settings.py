"""TSLRec settings and the `semrec train tslrec` job config (kept apart from the torch code so the CLI can build
its flags without importing torch)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, model_validator
from semrec.config import JobConfig, StrictModel
from semrec.vocabulary import AcceptsOldNames, OldName

from semrec_worker.core.runtime import BF16_OLD_NAME, Precision
from semrec_worker.training.config import SeqRecConfig

INSTRUCTION = (
    "Here are the items a user bought, in order. Predict how the user's interest is spread over item groups."
)
RESPONSE = "Response:"
STAGE1 = "tslrec"  # the run directory's folder holding stage 1: config, LoRA, heads, knowledge, item table
KNOWLEDGE = "knowledge.npz"


def has_stage1(run_dir: Path) -> bool:
    """Whether a TSLRec run directory holds a stage 1 of its own (LoRA and knowledge), reusable by others."""
    folder = run_dir / STAGE1
    return (folder / "lora").is_dir() and (folder / KNOWLEDGE).exists()


class TSLRecStage1(AcceptsOldNames, StrictModel):
    """Stage 1's own settings (pre-grouping, user SFT, item knowledge); the seed is the job's."""

    old_names: ClassVar[dict[str, str | OldName]] = {"bf16": BF16_OLD_NAME}

    instruction: str = Field(INSTRUCTION, description="instruction text before the user's items")
    n_groups: int = Field(16, ge=2, description="K latent categories from k-means on SASRec item embeddings")
    max_history: int = Field(20, ge=1, description="most recent items of a user fed to the LM")
    lora_r: int = Field(8, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha")
    lora_dropout: float = Field(0.1, ge=0, lt=1, description="LoRA dropout")
    sft_epochs: int = Field(1, ge=0, description="passes over the users in user-level SFT")
    sft_max_steps: int | None = Field(None, ge=1, description="cap on SFT optimiser steps (CPU budgets)")
    sft_max_train_minutes: float | None = Field(
        None, gt=0, description="wall-clock budget of the user SFT (minutes): it stops after the step that reaches it"
    )
    sft_batch_size: int = Field(16, ge=1, description="users per SFT step")
    sft_lr: float = Field(2e-4, gt=0, description="AdamW learning rate of LoRA + projections")
    item_batch_size: int = Field(64, ge=1, description="items per forward pass when extracting knowledge")
    precision: Precision = Field(
        "bf16", description="the LM's autocast: bf16 (on CPU and CUDA), fp32, or auto (bf16 where native)"
    )


class TSLRecSettings(TSLRecStage1):
    """Stage 1's settings with its seed, as the stage-1 functions take them."""

    seed: int = Field(0, description="k-means and SFT seed")


class TSLRecMethodSettings(TSLRecStage1):
    """TSLRec's own settings: where its stage 1 comes from (run it on a pretrained SASRec, or reuse a saved one),
    the LM, and stage 1's settings."""

    pretrained: Path | None = Field(
        None, description="run directory (or item_table.npz) of a pretrained ID-based SASRec: its item embeddings"
    )
    stage1: Path | None = Field(
        None, description="reuse the stage 1 (k-means groups, user SFT, item knowledge) of an earlier TSLRec run "
        "(its run directory or its tslrec/ folder): only the gated backbone is trained",
    )
    llm: str = Field("default", description="'default' (SmolLM2-135M), 'tiny' (tests) or a local HF model dir")

    @model_validator(mode="after")
    def _pretrained_or_stage1(self) -> TSLRecMethodSettings:
        if (self.pretrained is None) == (self.stage1 is None):
            raise ValueError("give exactly one of --pretrained (run stage 1) and --stage1 (reuse one)")
        stage1_only = set(TSLRecStage1.model_fields) | {"llm"}
        fields = type(self).model_fields
        changed = {name for name in stage1_only if getattr(self, name) != fields[name].get_default()}
        ignored = sorted(changed) if self.stage1 is not None else []
        if ignored:
            flags = ", ".join("--" + name.replace("_", "-") for name in ignored)
            raise ValueError(f"{flags}: stage-1 settings cannot change with --stage1 (it reuses the saved stage 1 as built)")
        return self


class TSLRecJobConfig(JobConfig):
    """`semrec train tslrec`: a seqrec run (its `seed` seeds stage 1 and the backbone) plus TSLRec's settings."""

    seqrec: SeqRecConfig = Field(default_factory=dict, validate_default=True)  # missing settings: named by flag
    tslrec: TSLRecMethodSettings = Field(default_factory=dict, validate_default=True)  # missing settings: named by flag

    def stage1_settings(self) -> TSLRecSettings:
        return TSLRecSettings(seed=self.seqrec.seed,
                              **{name: getattr(self.tslrec, name) for name in TSLRecStage1.model_fields})
