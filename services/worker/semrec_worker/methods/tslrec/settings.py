"""TSLRec settings (kept apart from the torch code so the CLI can build its flags without importing torch)."""

from __future__ import annotations

from pydantic import Field
from semrec.config import StrictModel

INSTRUCTION = (
    "Here are the items a user bought, in order. Predict how the user's interest is spread over item groups."
)
RESPONSE = "Response:"


class TSLRecSettings(StrictModel):
    instruction: str = Field(INSTRUCTION, description="instruction text before the user's items")
    n_groups: int = Field(16, ge=2, description="K latent categories from k-means on SASRec item embeddings")
    max_history: int = Field(20, ge=1, description="most recent items of a user fed to the LM")
    lora_r: int = Field(8, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha")
    lora_dropout: float = Field(0.1, ge=0, lt=1, description="LoRA dropout")
    sft_epochs: int = Field(1, ge=0, description="passes over the users in user-level SFT")
    sft_max_steps: int | None = Field(None, ge=1, description="cap on SFT optimiser steps (CPU budgets)")
    sft_batch_size: int = Field(16, ge=1, description="users per SFT step")
    sft_lr: float = Field(2e-4, gt=0, description="AdamW learning rate of LoRA + projections")
    item_batch_size: int = Field(64, ge=1, description="items per forward pass when extracting knowledge")
    bf16: bool = Field(True, description="bf16 autocast for the LM (CPU and CUDA)")
    seed: int = Field(0, description="k-means and SFT seed")
