"""`SeqRecConfig`: every setting of `semrec train seqrec` (and of the Python API `train_seqrec`).

Defaults follow the SAID paper (dim 256, one layer, one head, max length 50, batch 256, AdamW, early
stopping on validation NDCG@10 with patience 5) except the learning rate (2e-3), dropout (0.5) and the number
of training samples (every position): see docs/seqrec.md ("Calibration") for what changed and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from semrec.config import JobConfig

from semrec_worker.core.names import BackboneName, DeviceName, LossName, metric_name
from semrec_worker.evaluation.jobs import EvalJobConfig, Protocol
from semrec_worker.training.item_layer import ItemLayerSettings


class SeqRecConfig(EvalJobConfig, ItemLayerSettings):  # item-layer modes: training/item_layer.py
    out: Path = Field(..., description="run directory (config, metrics, checkpoints, model, item table)")
    protocols: list[Protocol] = Field(["full"], description="test protocols evaluated after training")
    backbone: BackboneName = Field("sasrec", description="sequence encoder")
    init: str = Field("random", description="'random' or an ItemTable (.npz file or run directory)")
    loss: LossName = Field(
        "said_cosine", description="training loss"
    )
    freeze_items: bool = Field(False, description="keep the item embeddings fixed (table init)")
    projection: Literal["pca", "linear"] = Field(
        "pca", description="how a table wider than --dim is reduced: PCA, or a trainable linear map"
    )
    seed: int = Field(0, description="seed of initialisation, batching, dropout and negatives")

    dim: int = Field(256, ge=2, description="embedding = hidden width")
    num_layers: int = Field(1, ge=1, description="GRU / Transformer layers")
    num_heads: int = Field(1, ge=1, description="attention heads (SASRec, BERT4Rec)")
    max_len: int = Field(50, ge=2, description="history length the encoder sees (left-padded)")
    dropout: float = Field(0.5, ge=0, lt=1, description="dropout on embeddings and inside blocks")
    mask_prob: float = Field(0.2, gt=0, lt=1, description="BERT4Rec cloze masking probability")

    batch_size: int = Field(256, ge=1, description="training windows (sequences) per optimiser step")
    lr: float = Field(2e-3, gt=0, description="AdamW learning rate (SAID paper: 5e-4; see docs/seqrec.md)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    grad_clip: float | None = Field(5.0, description="clip the gradient norm to this (None: no clipping)")
    epochs: int = Field(100, ge=1, description="maximum epochs")
    patience: int = Field(5, ge=1, description="stop after this many epochs without a better valid metric")
    valid_metric: str = Field(
        "ndcg@10", description="validation metric for early stopping (full ranking): ndcg@10, recall@10 (= hr@10), "
        "mrr, ndcg@20, recall@20"
    )
    max_train_minutes: float | None = Field(
        None, gt=0, description="wall-clock training budget: stop when spent (mid-epoch too), restore the best "
        "epoch and evaluate as usual; metrics.json records cut_short (None: no budget)",
    )

    temperature: float = Field(0.07, gt=0, description="said_cosine softmax temperature")
    n_negatives: int = Field(256, ge=1, description="sampled_softmax negatives per batch")
    negative_sampler: Literal["uniform", "popularity"] = Field(
        "uniform", description="sampled_softmax proposal distribution"
    )

    device: DeviceName = Field("auto", description="'auto': CUDA when available")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")
    resume: bool = Field(False, description="continue from RUN_DIR/checkpoint.pt")
    results: Path | None = Field(None, description="also append the test results to this results JSON")

    @field_validator("valid_metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        return metric_name(value)  # checked with the flags, before any data is read


class TrainingOverrides(JobConfig):
    """Settings passed to every `semrec train seqrec` of a benchmark (None: the trainer's default)."""

    lr: float | None = Field(None, description="learning rate")
    dropout: float | None = Field(None, description="dropout")
    weight_decay: float | None = Field(None, description="AdamW weight decay")
    epochs: int | None = Field(None, description="maximum epochs")
    patience: int | None = Field(None, description="early-stopping patience")
    dim: int | None = Field(None, description="model width")
    max_len: int | None = Field(None, description="history length")
    batch_size: int | None = Field(None, description="batch size")
    temperature: float | None = Field(None, description="said_cosine temperature")
    threads: int | None = Field(1, description="torch threads per training process")

    def flags(self) -> list[str]:
        out = []
        for name in TrainingOverrides.model_fields:
            value = getattr(self, name)
            if value is not None:
                out += ["--" + name.replace("_", "-"), str(value)]
        return out


def load_seqrec_config(run_dir: str | Path) -> SeqRecConfig:
    """A run's `SeqRecConfig`, also for commands whose config extends it (e.g. `semrec train llmemb-rat`'s
    TrainRATConfig): their extra settings are dropped here."""
    import json

    path = Path(run_dir)
    path = path / "config.json" if path.is_dir() else path
    payload = json.loads(path.read_text())
    if isinstance(payload, dict) and "config" in payload and "kind" in payload:
        payload = payload["config"]
    return SeqRecConfig.model_validate({k: v for k, v in payload.items() if k in SeqRecConfig.model_fields})
