"""`QualityConfig`: every setting of `semrec bench quality` (importable without torch)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, Field, field_validator
from semrec.vocabulary import OldName

from semrec_worker.core.names import BackboneName, LossName
from semrec_worker.data.dataset import DataConfig
from semrec_worker.evaluation.jobs import EvalJobConfig, Protocol
from semrec_worker.experiments.modes import GridItemLayer
from semrec_worker.lm.backends import MINILM
from semrec_worker.methods import registry
from semrec_worker.training.config import TrainingOverrides

FigureName = Literal["popularity-groups", "said-accuracy", "tsne"]
FIGURES: tuple[str, ...] = ("popularity-groups", "said-accuracy", "tsne")  # docs/images/quality-<dataset>-<name>.png


def table_keys() -> tuple[str, ...]:
    """`--tables` keys: a method's prebuilt table (LLMSeqSim's: the embeddings it ranks by), or `sasrec` = the
    pretrained ID-based SASRec that LLMEmb's alignment and TSLRec's pre-grouping use (default: the grid's own
    random/sasrec/seed<S> cell)."""
    return (*registry.with_table(), "llmseqsim", "sasrec")


# asked for by name only: LLM2BERT4Rec is a BERT4Rec method (--backbones bert4rec), LLMSeqPrompt generates text
# for every test user (hours on CPU)
OPT_IN_METHODS: tuple[str, ...] = ("llm2bert4rec", "llmseqprompt")


class QualityConfig(EvalJobConfig, TrainingOverrides):
    old_names: ClassVar[dict[str, str | OldName]] = {
        "budget_min": "max_train_minutes", "stage1_budget_min": "stage1_max_train_minutes"
    }

    methods: list[str] = Field(
        [m for m in registry.names() if m not in OPT_IN_METHODS],
        description="methods of the grid (" + ", ".join(registry.names()) + "; default all but "
        + ", ".join(OPT_IN_METHODS) + ")",
    )
    backbones: list[BackboneName] = Field(["gru4rec", "sasrec"], description="backbones")
    seeds: list[int] = Field([0, 1, 2], description="training seeds of every backbone cell")
    item_layers: list[GridItemLayer] = Field(
        ["init"], description="item layers of the backbone cells of every method with a table (LH, LLM2X, SAID, "
        "LLM2BERT4Rec, LLMEmb): init (the ID embedding starts from the table), frozen (table behind an adapter), "
        "dual-sum, dual-concat, dual-gate (frozen table + ID embedding, fused); each mode is its own row, its "
        "cells under RUNS_DIR/<method>+<mode>/ (init: RUNS_DIR/<method>/). LLMEmb's init row is its RAT cell, "
        "its other modes plain seqrec cells on its SCFT table; Random, TSLRec and the reference methods keep "
        "their one row",
    )
    loss: LossName = Field(
        "said_cosine", description="training loss of every backbone cell"
    )
    runs_dir: Path | None = Field(None, description="cell directories (default runs/quality-<dataset>)")
    tables: list[str] = Field(
        [], description="prebuilt tables as method=PATH (ItemTable .npz or run dir), methods: "
        + ", ".join(table_keys()) + "; others are built by their own trainer under RUNS_DIR/<method>/table",
    )
    max_train_minutes: float | None = Field(
        None, gt=0, description="wall-clock training budget per backbone cell (minutes); cells that hit it are "
        "reported as cut short",
    )
    stage1_max_train_minutes: float | None = Field(
        None, gt=0, description="time budget of the SAID / LLMEmb-SCFT table builds and of TSLRec's user SFT (minutes)"
    )
    llm: str = Field("default", description="LM of the LH, SAID, LLMEmb and TSLRec builds ('tiny' for tests)")
    text_encoder: str = Field(MINILM, description="text encoder of LLM2X and LLMSeqSim ('tiny' for tests)")
    llmseqsim_combine: list[Literal["mean", "linear", "decay", "last"]] = Field(
        ["mean", "linear", "decay", "last"], description="LLMSeqSim's session aggregations to choose from on validation"
    )
    llmseqsim_similarity: list[Literal["cosine", "dot", "euclidean"]] = Field(
        ["cosine", "dot", "euclidean"], description="LLMSeqSim's similarity measures to choose from on validation"
    )
    isolate: bool = Field(True, description="run each cell as its own `semrec train` process (log in the cell)")
    report_only: bool = Field(False, description="train nothing: collect the cells that exist and write the report")
    results: Path | None = Field(
        None, description="results JSON (default results/quality-<dataset>.json); the markdown goes beside it"
    )
    plots: bool = Field(False, description="also draw the figures of docs/results.md into --images-dir")
    images_dir: Path = Field(Path("docs/images"), description="where --plots writes its PNGs")
    figures: list[FigureName] = Field(
        list(FIGURES), description="the figures --plots draws (the files of the "
        "others are left as they are and still listed in the markdown)",
    )
    recorded: list[Path] = Field(
        [], description="earlier results JSONs (of this grid, or of `semrec eval` baselines): a cell whose run "
        "directory has no results.json is reported from the first that holds it (listed as recorded) instead of "
        "being trained",
    )
    tslrec_sft_max_steps: int | None = Field(None, ge=1, description="cap on TSLRec's user-SFT steps (CPU budgets)")
    tslrec_shared_stage1: bool = Field(
        True, description="TSLRec's stage 1 (pre-grouping on random/sasrec/seed0, user SFT, item knowledge) runs in "
        "the first TSLRec cell and the others reuse it, as every other LLM method builds its table once",
    )
    said_run: Path | None = Field(
        None, description="SAID stage-1 run (dir with metrics.json) of the accuracy figure (default: the said table's)"
    )
    popularity_groups: int = Field(5, ge=2, description="item-popularity groups of the NDCG-by-popularity figure")
    tsne_items: int = Field(2000, ge=10, description="items drawn per t-SNE panel")

    @field_validator("tables")
    @classmethod
    def _method_equals_path(cls, value: list[str]) -> list[str]:
        for entry in value:
            key, sep, path = entry.partition("=")
            if not sep or not path or key not in table_keys():
                raise ValueError(f"'{entry}': expected method=PATH with method one of {', '.join(table_keys())}")
        return value

    @field_validator("item_layers")
    @classmethod
    def _modes_once_each(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one item layer")
        if len(set(value)) != len(value):
            raise ValueError(f"an item layer is listed twice: {','.join(value)}")
        return value

    @field_validator("recorded", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        if value is None:  # configs saved when --recorded took one file
            return []
        return [value] if isinstance(value, str | Path) else value

    @field_validator("methods")
    @classmethod
    def _registered(cls, value: list[str]) -> list[str]:
        unknown = [m for m in value if m not in registry.SPECS]
        if unknown:
            raise ValueError(f"unknown method {', '.join(unknown)} (known: {', '.join(registry.names())})")
        return value

    def table_paths(self) -> dict[str, Path]:
        return {k: Path(p).expanduser() for k, _, p in (e.partition("=") for e in self.tables)}


RECIPE_AXES: tuple[str, ...] = ("loss", "augment", "dropout", "lr", "dim", "max_len")  # the order they are tuned


class RecipeConfig(DataConfig):
    """`semrec bench recipe`: a coordinate-descent sweep of the training recipe per backbone and item table,
    chosen on validation; only the chosen cell of each sweep is evaluated on test.

    Each axis lists its values, the first one being the starting point. The sweep starts from the first
    value of every axis, then visits the axes in the order of RECIPE_AXES: every other value of the axis is
    trained with the rest held at the best so far, and the best validation NDCG@10 (a tie keeps the earlier
    setting) moves on to the next axis. An axis with one value is held fixed."""

    backbones: list[BackboneName] = Field(["sasrec", "gru4rec"], description="backbones, each swept on its own")
    inits: list[str] = Field(
        ["random"], description="item layers, each swept on its own: 'random' or an ItemTable (.npz file or run dir)"
    )
    losses: list[LossName] = Field(["said_cosine", "full_ce"], description="training losses tried")
    augments: list[Literal["none", "reverse"]] = Field(["none", "reverse"], description="augmentations tried")
    dropouts: list[float] = Field([0.5, 0.2], description="dropouts tried")
    lrs: list[float] = Field([2e-3, 1e-3, 5e-3], description="learning rates tried")
    dims: list[int] = Field([256], description="model widths tried")
    max_lens: list[int] = Field([50], description="history lengths tried")
    epochs: int = Field(20, ge=1, description="maximum epochs of every cell (early stopping on validation NDCG@10)")
    patience: int = Field(3, ge=1, description="early-stopping patience of every cell")
    max_train_minutes: float | None = Field(
        None, gt=0, description="wall-clock training budget per cell (minutes; a cell that hits it is marked cut_short)"
    )
    batch_size: int | None = Field(None, ge=1, description="batch size (default: the trainer's)")
    seed: int = Field(0, description="training seed of every cell")
    evaluate_test: bool = Field(
        True, description="evaluate the chosen cell of each sweep on test (--no-evaluate-test: validation only)"
    )
    protocols: list[Protocol] = Field(["full"], description="test protocols of the chosen cells")
    runs_dir: Path | None = Field(None, description="cell run directories (default runs/recipe-<dataset>); done "
                                  "cells are reused")
    results: Path | None = Field(None, description="sweep JSON (default results/recipe-sweep-<dataset>.json); "
                                 "sweeps of other backbones / inits already in it are kept")
    threads: int | None = Field(1, ge=1, description="torch CPU threads")

    @field_validator("losses", "augments", "dropouts", "lrs", "dims", "max_lens", "backbones", "inits")
    @classmethod
    def _not_empty(cls, value: list) -> list:
        if not value:
            raise ValueError("give at least one value")
        return value

    def axis_values(self) -> dict[str, list]:
        return {"loss": self.losses, "augment": self.augments, "dropout": self.dropouts, "lr": self.lrs,
                "dim": self.dims, "max_len": self.max_lens}


def command_line(command: str, config: BaseModel) -> str:
    """`command` with the flags of `config` that differ from its defaults (what reproduces a report)."""
    parts = [command]
    for name, spec in type(config).model_fields.items():
        value, default = getattr(config, name), spec.get_default(call_default_factory=True)
        if value == default and name != "data":
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, list):
            parts += [flag, ",".join(str(v) for v in value)]
        elif value is not None:
            parts += [flag, str(value)]
    return " ".join(parts)


class SAIDGainConfig(DataConfig, TrainingOverrides):
    """`semrec bench said-gain`: stage 2 from every item-table snapshot of a SAID stage-1 run (SAID paper,
    Figure 5: the recommender's gain against the table's generation accuracy), on validation only.

    One `semrec train seqrec --init <snapshot> --no-evaluate-test` cell per snapshot x backbone x seed, and one
    random-init reference cell per backbone x seed; each snapshot's gain is relative to the reference of the same
    backbone and seed."""

    said_run: Path = Field(
        ..., description="SAID stage-1 run directory trained with --snapshot-tables (its snapshots/index.json)"
    )
    backbones: list[BackboneName] = Field(["sasrec", "gru4rec"], description="backbones")
    seeds: list[int] = Field([0], description="training seeds of every cell")
    loss: LossName = Field("said_cosine", description="training loss of every cell")
    max_train_minutes: float | None = Field(
        None, gt=0, description="wall-clock training budget per cell (minutes; a cell that hits it is marked cut_short)"
    )
    runs_dir: Path | None = Field(
        None, description="cell run directories (default runs/said-gain-<dataset>); finished cells are reused"
    )
    results: Path | None = Field(None, description="results JSON (default results/said-gain-<dataset>.json)")
    images_dir: Path = Field(Path("docs/images"), description="where the figure said-gain-<dataset>.png goes")

    @field_validator("backbones", "seeds")
    @classmethod
    def _not_empty(cls, value: list) -> list:
        if not value:
            raise ValueError("give at least one value")
        return value
