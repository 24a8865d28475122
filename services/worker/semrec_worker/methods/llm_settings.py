"""Settings of the LLM-based embedding methods (LH, LLM2X, LLMSeqSim; LLMEmb's are in `methods.llmemb.settings`), importable without
torch: the CLI builds its flags from them, and each method's item table records them in its metadata."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator
from semrec.config import StrictModel
from semrec.vocabulary import AcceptsOldNames, OldName

from semrec_worker.core.runtime import BF16_OLD_NAME, Precision
from semrec_worker.data.text import CAPTION_MAX_TOKENS
from semrec_worker.lm.backends import MINILM, BackendKind

SESSION_COMBINATIONS = ("mean", "linear", "decay", "last")  # LLMSeqSim's session aggregations
SIMILARITIES = ("cosine", "dot", "euclidean")  # and its similarity measures


class LHSettings(AcceptsOldNames, StrictModel):
    old_names: ClassVar[dict[str, str | OldName]] = {"bf16": BF16_OLD_NAME}

    llm: str = Field("default", description="language model: 'default' (SmolLM2-135M), 'tiny', or a local HF dir")
    backend: BackendKind = Field("auto", description="embedding backend (auto: vllm when CUDA+vllm exist)")
    max_caption_tokens: int = Field(
        CAPTION_MAX_TOKENS, ge=4, description="caption length cap (LM tokens; the same as SAID's)"
    )
    batch_size: int = Field(32, ge=1, description="texts per forward pass")
    precision: Precision = Field(
        "auto", description="bf16 autocast or fp32; auto = bf16 where native (CUDA, a CPU with AMX or AVX512-BF16), else fp32"
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


class LLMSeqSimSettings(StrictModel):
    combine: list[str] = Field(
        list(SESSION_COMBINATIONS), description="session aggregations to choose from: mean, linear (weighted by "
        "position k/t), decay (weighted by decay^age), last",
    )
    similarity: list[str] = Field(list(SIMILARITIES), description="similarity measures to choose from: cosine, dot, "
                                  "euclidean")
    decay: float = Field(0.8, gt=0, le=1, description="decayed mean: weight of an item k steps back is decay^k")
    window: int | None = Field(None, ge=1, description="use only the last N items of a history (None: all)")
    skip_history: bool = Field(
        False, description="never recommend an item already in the history, in the model itself (the shared "
        "protocol's rule is --exclude-history, as for every other method)",
    )

    @field_validator("combine")
    @classmethod
    def _known_combinations(cls, value: list[str]) -> list[str]:
        return _known(value, SESSION_COMBINATIONS)

    @field_validator("similarity")
    @classmethod
    def _known_similarities(cls, value: list[str]) -> list[str]:
        return _known(value, SIMILARITIES)


def _known(value: list[str], known: tuple[str, ...]) -> list[str]:
    unknown = [v for v in value if v not in known]
    if unknown or not value:
        raise ValueError(f"choose from {', '.join(known)} (got {', '.join(unknown) or 'none'})")
    return value
