"""`SeqRecConfig`: every setting of `semrec train seqrec` (and of the Python API `train_seqrec`).

Defaults follow the SAID paper (dim 256, one layer, one head, max length 50, batch 256, AdamW, early
stopping on validation NDCG@10 with patience 5; BERT4Rec patience 20, the per-backbone epoch cap and patience
are in training/recipes.py) except the learning rate (2e-3), dropout (0.5) and the number
of training samples (every position): see docs/seqrec.md ("Calibration") for what changed and why.

The config is nested, one settings object per concern (`dataset`, `evaluation`, `model`, `optimisation`,
`objective`, `runtime`); every leaf name is unique, so the flags stay flat (`--lr`, `--dim`) and a leaf
reads flat too (`config.lr` is `config.optimisation.lr`). Flat input (keyword arguments, the flat
config.json of earlier versions) is routed to its group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from semrec.config import (
    JobConfig,
    config_payload,
    invocation_field,
    old_name_paths,
    read_config_file,
    with_leaves,
)

from semrec_worker.core.names import BackboneName, DeviceName, HistoryBiasName, LossName, metric_name
from semrec_worker.data.dataset import DataConfig
from semrec_worker.evaluation.jobs import Protocol
from semrec_worker.training.item_layer import ItemLayerSettings
from semrec_worker.training.recipes import describe as describe_recipe
from semrec_worker.training.recipes import recipe_of


class DataSettings(DataConfig):
    """Which data, how it is filtered, and the fingerprint of the filtered dataset a saved run was trained on."""

    fingerprint: str | None = Field(
        None, description="expected dataset fingerprint (a saved run records it; a different dataset is an error)"
    )


class EvaluationSettings(JobConfig):
    """The test protocols evaluated after training."""

    evaluate_test: bool = Field(
        True, description="evaluate the test split after training (--no-evaluate-test: a tuning run, which reads "
        "only the training and validation parts; `semrec eval run` scores its test split later)",
    )
    protocols: list[Protocol] = Field(["full"], description="test protocols evaluated after training")
    exclude_history: bool = Field(False, description="mask items from the user's history (full protocol)")
    eval_seed: int = Field(0, description="seed of the sampled negatives")


class ModelSettings(JobConfig):
    """The encoder and its item layer."""

    backbone: BackboneName = Field("sasrec", description="sequence encoder")
    init: str = Field("random", description="'random' or an ItemTable (.npz file or run directory)")
    freeze_items: bool = Field(False, description="keep the item embeddings fixed (table init)")
    projection: Literal["pca", "linear"] = Field(
        "pca", description="how a table wider than --dim is reduced: PCA, or a trainable linear map"
    )
    dim: int = Field(256, ge=2, description="embedding = hidden width")
    num_layers: int = Field(1, ge=1, description="GRU / Transformer layers")
    num_heads: int = Field(1, ge=1, description="attention heads (SASRec, BERT4Rec)")
    max_len: int = Field(50, ge=2, description="history length the encoder sees (left-padded)")
    dropout: float = Field(0.5, ge=0, lt=1, description="dropout on embeddings and inside blocks")
    mask_prob: float = Field(0.6, gt=0, lt=1, description="BERT4Rec cloze masking probability (0.6: the BERT4Rec "
                             "paper's value for Amazon Beauty, chosen on validation, see docs/seqrec.md)")
    history_bias: HistoryBiasName = Field(
        "none", description="'learned': one trained scalar b added to the score of every item already in the "
        "sequence (training loss, evaluation and recommend; b << 0 is the ranker's exclude_seen); 'learned_last': "
        "and a second one added to the most recent item's score; see docs/seqrec.md",
    )
    items: ItemLayerSettings = Field(default_factory=ItemLayerSettings)

    @model_validator(mode="after")
    def _legacy_flags_belong_to_init(self) -> ModelSettings:
        """`--freeze-items` and `--projection linear` belong to `--item-layer init` (frozen/dual freeze the
        table anyway): refused with the flags, before any data loads."""
        mode = self.items.item_layer
        if mode != "init" and self.freeze_items:
            raise ValueError(f"--freeze-items applies to --item-layer init; --item-layer {mode} already keeps the "
                             "table frozen (its adapter and ID embedding train)")
        if mode != "init" and self.projection == "linear":
            raise ValueError(f"--projection linear applies to --item-layer init (it is --item-layer frozen "
                             f"--adapter-hidden 0); drop it with --item-layer {mode}")
        return self

    def backbone_settings(self) -> dict[str, object]:
        """The keyword settings of `build_backbone` (each backbone takes what it uses)."""
        return {"max_len": self.max_len, "num_layers": self.num_layers, "num_heads": self.num_heads,
                "dropout": self.dropout, "mask_prob": self.mask_prob, "history_bias": self.history_bias}


class OptimisationSettings(JobConfig):
    """The optimiser and the schedule: batches, AdamW, epochs, early stopping, the time budget."""

    batch_size: int = Field(256, ge=1, description="training windows (sequences) per optimiser step")
    lr: float = Field(2e-3, gt=0, description="AdamW learning rate (SAID paper: 5e-4; see docs/seqrec.md)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    history_bias_lr: float | None = Field(
        None, gt=0, description="AdamW learning rate of the learned history biases, scalars that Adam moves by "
        "about this much per step (None: --lr); no weight decay",
    )
    grad_clip: float | None = Field(5.0, description="clip the gradient norm to this (None: no clipping)")
    augment: Literal["none", "reverse"] = Field(
        "none", description="training-sequence augmentation: 'reverse' also trains on every training sequence "
        "reversed (for data whose within-user order says little, e.g. reviews); validation and test are untouched",
    )
    # None: the backbone's recipe default (training/recipes.py), resolved when the run's config is built
    epochs: int | None = Field(None, ge=1, description=f"maximum epochs (default per backbone: {describe_recipe('epochs')})")
    patience: int | None = Field(
        None, ge=1, description="stop after this many epochs without a better valid metric (default per backbone: "
        f"{describe_recipe('patience')})",
    )
    valid_metric: str = Field(
        "ndcg@10", description="validation metric for early stopping (full ranking): ndcg@10, recall@10 (= hr@10), "
        "mrr, ndcg@20, recall@20"
    )
    max_train_minutes: float | None = Field(
        None, gt=0, description="wall-clock training budget: stop when spent (mid-epoch too), restore the best "
        "epoch and evaluate as usual; metrics.json records cut_short (None: no budget)",
    )

    @field_validator("valid_metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        return metric_name(value)  # checked with the flags, before any data is read


class LossSettings(JobConfig):
    """The training loss and its settings."""

    loss: LossName = Field("said_cosine", description="training loss")
    temperature: float = Field(0.07, gt=0, description="said_cosine softmax temperature")
    n_negatives: int = Field(256, ge=1, description="sampled_softmax negatives per batch")
    negative_sampler: Literal["uniform", "popularity"] = Field(
        "uniform", description="sampled_softmax proposal distribution"
    )


class RuntimeSettings(JobConfig):
    """Where it runs (no effect on the result beyond floating-point order)."""

    device: DeviceName = Field("auto", description="'auto': CUDA when available")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")


class SeqRecConfig(JobConfig):
    """`semrec train seqrec`: one settings object per concern, the seed, and the per-invocation fields (the run
    directory, --resume, a results file), which are never saved with the run."""

    out: Path = invocation_field(..., "run directory (config, metrics, checkpoints, model, item table)")
    resume: bool = invocation_field(False, "continue from RUN_DIR/checkpoint.pt")
    results: Path | None = invocation_field(None, "also append the test results to this results JSON")
    seed: int = Field(0, description="seed of initialisation, batching, dropout and negatives")
    dataset: DataSettings = Field(default_factory=DataSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    optimisation: OptimisationSettings = Field(default_factory=OptimisationSettings)
    objective: LossSettings = Field(default_factory=LossSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)

    @model_validator(mode="after")
    def _backbone_recipe_defaults(self) -> SeqRecConfig:
        """--epochs / --patience not given: the backbone's recipe defaults (training/recipes.py), written into
        the config so the saved run records what it ran with."""
        schedule = self.optimisation
        if schedule.epochs is None or schedule.patience is None:
            recipe = recipe_of(self.model.backbone)
            self.optimisation = schedule.model_copy(update={
                "epochs": recipe.epochs if schedule.epochs is None else schedule.epochs,
                "patience": recipe.patience if schedule.patience is None else schedule.patience,
            })
        return self


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
    augment: Literal["none", "reverse"] | None = Field(None, description="training-sequence augmentation")
    history_bias: HistoryBiasName | None = Field(None, description="learned history bias (none, learned, learned_last)")
    history_bias_lr: float | None = Field(None, description="learning rate of the history biases")
    threads: int | None = Field(1, description="torch threads per training process")

    def flags(self) -> list[str]:
        out = []
        for name in TrainingOverrides.model_fields:
            value = getattr(self, name)
            if value is not None:
                out += ["--" + name.replace("_", "-"), str(value)]
        return out


def load_seqrec_config(run_dir: str | Path) -> SeqRecConfig:
    """A run's `SeqRecConfig`, whatever command trained it (a stage-2 config holds one as its `seqrec` part;
    flat files of earlier versions are migrated). `out` is the directory it was loaded from."""
    path = Path(run_dir)
    folder = path if path.is_dir() else path.parent
    payload = read_config_file(path)
    settings = config_payload(payload)
    if isinstance(settings, dict) and isinstance(settings.get("seqrec"), dict):
        settings = settings["seqrec"]  # a stage-2 config: its seqrec part
    elif isinstance(settings, dict):  # flat (earlier versions): keep the seqrec leaves of a stage-2 config
        known = set(SeqRecConfig.leaf_paths()) | set(SeqRecConfig.model_fields) | set(old_name_paths(SeqRecConfig))
        settings = {k: v for k, v in settings.items() if k in known}
    nested = SeqRecConfig.saved_settings(settings)
    return SeqRecConfig.model_validate(with_leaves(SeqRecConfig, nested, {"out": folder}))
