"""Settings of the LLM-based embedding methods (LH, LLM2X, LLMEmb SCFT, LLMSeqSim), importable without
torch: the CLI builds its flags from them, and each method's item table records them in its metadata."""

from __future__ import annotations

from pydantic import Field, field_validator
from semrec.config import StrictModel

from semrec_worker.lm.backends import MINILM, BackendKind

SESSION_COMBINATIONS = ("mean", "last", "decay")
LLAMA_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

class LHSettings(StrictModel):
    llm: str = Field("default", description="language model: 'default' (SmolLM2-135M), 'tiny', or a local HF dir")
    backend: BackendKind = Field("auto", description="embedding backend (auto: vllm when CUDA+vllm exist)")
    max_caption_tokens: int = Field(64, ge=4, description="caption length cap (LM tokens)")
    batch_size: int = Field(32, ge=1, description="texts per forward pass")
    bf16: bool | None = Field(
        None, description="bf16 autocast (default: on where native: CUDA, or a CPU with avx512_bf16/AMX)"
    )
    dim: int | None = Field(None, ge=1, description="PCA the vectors to this width (None: keep the LM width)")


class LLM2XSettings(StrictModel):
    text_encoder: str = Field(MINILM, description="'minilm' (packaged all-MiniLM-L6-v2), 'tiny', or a local ST dir")
    dim: int = Field(
        256, ge=1, description="PCA width = the backbone's embedding width (the default of `semrec train seqrec --dim`)"
    )
    max_caption_tokens: int = Field(64, ge=4, description="caption length cap (words)")
    batch_size: int = Field(64, ge=1, description="texts per forward pass")
    text_table: str | None = Field(
        None, description="reuse saved text embeddings (ItemTable .npz or dir) instead of running the encoder"
    )


class SCFTSettings(StrictModel):
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
    time_budget_min: float | None = Field(None, gt=0, description="stop training after this many minutes")
    checkpoint_every: int = Field(10, ge=1, description="checkpoint every N steps")
    bf16: bool | None = Field(
        None, description="bf16 autocast (default: on where native: CUDA, or a CPU with avx512_bf16/AMX)"
    )
    embed_batch_size: int = Field(32, ge=1, description="items per forward pass when embedding the catalogue")
    dim: int | None = Field(None, ge=1, description="PCA the output table to this width (None: LM width)")
    probe_items: int = Field(
        128, ge=0, description="items whose two attribute-dropped views must retrieve each other (before/after)"
    )
    embed_catalogue: bool = Field(True, description="embed every item into the item table after SCFT")
    seed: int = Field(0, description="batch order, attribute dropout and LoRA init")


class LLMSeqSimSettings(StrictModel):
    combine: list[str] = Field(
        ["mean", "last", "decay"], description="session embeddings to evaluate: mean, last, decay (decayed mean)"
    )
    decay: float = Field(0.8, gt=0, le=1, description="decayed mean: weight of an item k steps back is decay^k")
    window: int | None = Field(None, ge=1, description="use only the last N items of a history (None: all)")
    skip_history: bool = Field(True, description="never recommend an item already in the history")

    @field_validator("combine")
    @classmethod
    def _known_combinations(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in SESSION_COMBINATIONS]
        if unknown or not value:
            raise ValueError(f"choose from {', '.join(SESSION_COMBINATIONS)} (got {', '.join(unknown) or 'none'})")
        return value
