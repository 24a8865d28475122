"""LLMSeqPrompt's settings and its job config (importable without torch: the CLI builds its flags from them)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from semrec.config import StrictModel
from semrec.vocabulary import AcceptsOldNames, OldName

from semrec_worker.core.runtime import BF16_OLD_NAME, Precision
from semrec_worker.evaluation.jobs import EvalJobConfig
from semrec_worker.lm.backends import MINILM

PROMPT_HEAD = "A shopper's items, oldest first:\n"
PROMPT_TAIL = "\nNext item:"
ADAPTER = "adapter"
HISTORY = "history.json"


class LLMSeqPromptSettings(AcceptsOldNames, StrictModel):
    old_names: ClassVar[dict[str, str | OldName]] = {"bf16": BF16_OLD_NAME}

    llm: str = Field("default", description="language model: 'default' (SmolLM2-135M), 'tiny', or a local HF dir")
    text_encoder: str = Field(MINILM, description="text encoder that maps generated names to catalogue items")
    history_items: int = Field(10, ge=1, description="the session's last N item names in the prompt")
    name_max_chars: int = Field(80, ge=4, description="an item name is cut to this many characters")
    max_prompt_tokens: int = Field(320, ge=8, description="prompt cap in LM tokens (the oldest names go first)")
    lora_r: int = Field(8, ge=1, description="LoRA rank")
    lora_alpha: int = Field(16, ge=1, description="LoRA alpha")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    lr: float = Field(5e-4, gt=0, description="AdamW learning rate")
    batch_size: int = Field(8, ge=1, description="prompt-completion pairs per step")
    max_steps: int = Field(300, ge=0, description="fine-tuning steps (0: the LM as it is)")
    max_train_minutes: float | None = Field(None, gt=0, description="stop fine-tuning after this many minutes")
    decoding: Literal["beam", "sampling"] = Field("beam", description="how names are generated")
    num_generations: int = Field(10, ge=1, description="names generated per session (beams or samples)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling mass")
    max_new_tokens: int = Field(32, ge=1, description="longest generated name (LM tokens)")
    generation_batch_size: int = Field(4, ge=1, description="sessions per generate() call")
    backfill: Literal["none", "similarity"] = Field(
        "none", description="items no generation maps to: 'none' = tied last (the paper: only the generated list), "
        "'similarity' = by cosine to the generated names' mean embedding",
    )
    precision: Precision = Field(
        "auto", description="bf16 autocast or fp32; auto = bf16 where native (CUDA, a CPU with AMX or AVX512-BF16), else fp32"
    )
    seed: int = Field(0, description="seed of the example order, LoRA init and sampling")


class TrainLLMSeqPromptConfig(EvalJobConfig, LLMSeqPromptSettings):
    """`semrec train llmseqprompt`: fine-tune, generate for the test users, evaluate under the shared protocol."""

    out: Path | None = Field(None, description="run directory (default runs/llmseqprompt-<dataset>-<time>)")
    eval_users: int | None = Field(
        None, ge=1, description="evaluate on this many test users drawn with --seed (None: all; generation is the "
        "cost)",
    )
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")
