"""The method registry: one `MethodSpec` per method of the quality grid, the one place that says what a
method is (its name and label, how its item table is built, how its backbone cells train, what it adds to a
stage-2 run, which refresh encoder it saves).

Adding a method is one module or package under `methods/` plus one `MethodSpec` line in `SPECS` (or a
`register(spec)` call, e.g. from a plug-in or a test): the CLI's `semrec train <name>`, the grid of
`semrec bench quality`, its tables and `semrec refresh` all read it from here.

The registry imports no torch (the CLI reads it for `--help`): what runs torch is named by a `Ref`
("module:attribute") and imported when it is used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from semrec.config import JobConfig
from semrec.errors import UserError

from semrec_worker.methods.lh import TrainLHConfig
from semrec_worker.methods.llm2bert4rec import TrainLLM2BERT4RecConfig, only_bert4rec
from semrec_worker.methods.llm2x import TrainLLM2XConfig
from semrec_worker.methods.llmemb.settings import TrainLLMEmbConfig, TrainRATConfig
from semrec_worker.methods.said.settings import TrainSAIDConfig
from semrec_worker.methods.tslrec.settings import TSLRecJobConfig, has_stage1
from semrec_worker.refresh.encoders import (
    ENCODER_DIRNAME,
    SPEC_FILE,
    ItemLayerEncoder,
    LinearTextMapEncoder,
    encoder_kind,
)
from semrec_worker.training.config import SeqRecConfig


@dataclass(frozen=True)
class Ref:
    """A "module:attribute" reference, imported on first use (keeps torch out of the registry's imports)."""

    target: str

    def load(self) -> Any:
        module, _, attribute = self.target.partition(":")
        return getattr(import_module(module), attribute)

    def deferred(self) -> Callable[..., Any]:
        """A function that calls the target, imported at the call (a command's runner: `--help` imports no torch)."""

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.load()(*args, **kwargs)

        return call


@dataclass(frozen=True)
class TableBuild:
    """`semrec train <method>`: `config` -> a run directory holding the method's `item_table.npz`."""

    config: type[JobConfig]
    run: Ref
    help: str
    grid_settings: Callable[[Any], dict[str, Any]] = lambda grid: {}  # the grid's settings this build takes


@dataclass(frozen=True)
class CellInputs:
    """What a backbone cell of the grid may build on."""

    seed: int
    resume: bool
    grid: Any  # the grid's settings (`QualityConfig`)
    table: Callable[[], Path]  # the method's item table (built on first use)
    sasrec: Callable[[int], Path]  # the pretrained ID-based SASRec run of a seed
    same_method_cells: list[Path] = field(default_factory=list)  # this method's cell directories, grid order
    backbone: str | None = None  # the cell's backbone (a method made for one backbone refuses the others)


@dataclass(frozen=True)
class ItemLayer:
    """A pluggable item layer, by the name a run's config.json records (`parts.item_layer`): `empty` builds one
    shaped like a saved one from its state dict (`(state) -> nn.Module`; the weights are loaded after)."""

    name: str
    empty: Ref


@dataclass(frozen=True)
class Stage2:
    """`semrec train <command>`: how a backbone on top of a method trains (`config` -> a seqrec run directory).

    `config` holds the seqrec settings (it is `SeqRecConfig`, or has a `seqrec` part beside the method's own
    settings); `item_layer` is what the backbone trains through (None: the seqrec layer that --init and
    --projection choose); `model_from_config` rebuilds a run's model from these."""

    command: str
    config: type[JobConfig]
    run: Ref
    help: str
    item_layer: ItemLayer | None = None


SEQREC = Stage2(
    "seqrec", SeqRecConfig, Ref("semrec_worker.methods.registry:train_backbone"),
    "Train a sequential recommender (gru4rec, sasrec, bert4rec) on per-prefix targets with early stopping; "
    "RUN_DIR gets config, metrics, checkpoint, model, item table and test results. "
    "Data-parallel: torchrun --nproc-per-node N $(which semrec) train seqrec ...",
)
LLMEMB_RAT = Stage2(
    "llmemb-rat", TrainRATConfig, Ref("semrec_worker.methods.llmemb.job:train_llmemb_rat"),
    "LLMEmb stage 2 (RAT): train a backbone through a two-layer adapter over the frozen, PCA'd SCFT "
    "embeddings, plus alpha x collaborative alignment to a pretrained SASRec's item embeddings.",
    item_layer=ItemLayer("llmemb-adapter", Ref("semrec_worker.methods.llmemb.model:empty_adapter")),
)
TSLREC = Stage2(
    "tslrec", TSLRecJobConfig, Ref("semrec_worker.methods.tslrec.train:train_tslrec"),
    "TSLRec: k-means pre-grouping of SASRec item embeddings, user-level LoRA SFT of the LM, "
    "item knowledge fused with ID embeddings through a gate in a new backbone.",
    item_layer=ItemLayer("tslrec-gated-fusion", Ref("semrec_worker.methods.tslrec.model:empty_gated_fusion")),
)
# the seqrec trainer's own item layers (`--init`, `--projection`)
BUILT_IN_ITEM_LAYERS = (
    ItemLayer("embedding", Ref("semrec_worker.backbones.item_embedding:empty_embedding")),
    ItemLayer("table-projection", Ref("semrec_worker.backbones.item_embedding:empty_table_projection")),
    ItemLayer("table-adapter", Ref("semrec_worker.backbones.item_embedding:empty_table_adapter")),
    ItemLayer("dual-sum", Ref("semrec_worker.backbones.item_embedding:empty_dual_sum")),
    ItemLayer("dual-concat", Ref("semrec_worker.backbones.item_embedding:empty_dual_concat")),
    ItemLayer("dual-gate", Ref("semrec_worker.backbones.item_embedding:empty_dual_gate")),
)


@dataclass(frozen=True)
class MethodSpec:
    name: str
    label: str
    baseline: bool = False  # a reference point of the report, not an LLM-initialised method
    table: TableBuild | None = None  # how its item table is built (None: it has none)
    stage2: Stage2 | None = None  # how its backbone cells train (None: evaluated as is, no backbone, no seed)
    cell: Callable[[CellInputs], dict[str, Any]] = lambda inputs: {}  # settings of a backbone cell's job
    needs_sasrec: bool = False  # its cells build on a pretrained ID-based SASRec (the grid trains it first)
    stage2_hook: Ref | None = None  # called when `semrec train seqrec --init <its table>` has saved the run
    refresh_encoder: Ref | None = None  # its `ItemEncoder` class (kind == name), loaded with `.load(directory)`
    reference: Ref | None = None  # no backbone: `(dataset, grid) -> (Recommender, reported name, extra config)`

    @property
    def has_backbone(self) -> bool:
        return self.stage2 is not None


def _table_init(inputs: CellInputs) -> dict[str, Any]:
    return {"init": str(inputs.table())}


def _rat_cell(inputs: CellInputs) -> dict[str, Any]:
    return {"scft": str(inputs.table()), "collaborative": str(inputs.sasrec(inputs.seed))}


def _tslrec_cell(inputs: CellInputs) -> dict[str, Any]:
    if inputs.resume:
        raise UserError("a TSLRec cell cannot resume (its stage 1 reruns): delete its checkpoint.pt")
    shared = inputs.grid.tslrec_shared_stage1
    # every cell reuses the stage 1 of the first one that ran its own, as other LLM methods build one table
    reused = next((path for path in inputs.same_method_cells if has_stage1(path)), None) if shared else None
    if reused is not None:
        return {"stage1": reused}
    return {"llm": inputs.grid.llm, "pretrained": inputs.sasrec(0 if shared else inputs.seed),
            "sft_max_steps": inputs.grid.tslrec_sft_max_steps, "sft_max_train_minutes": inputs.grid.stage1_max_train_minutes}


SPECS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add (or replace) a method."""
    SPECS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    SPECS.pop(name, None)


for _spec in (
    MethodSpec("popularity", "Popularity", baseline=True,
               reference=Ref("semrec_worker.models.popularity:grid_reference")),
    MethodSpec("llmseqsim", "LLMSeqSim", baseline=True, reference=Ref("semrec_worker.methods.llmseqsim:grid_reference")),
    MethodSpec("llmseqprompt", "LLMSeqPrompt", baseline=True,
               reference=Ref("semrec_worker.methods.llmseqprompt.job:grid_reference")),
    MethodSpec("sknn", "SKNN", baseline=True, reference=Ref("semrec_worker.models.knn:sknn_reference")),
    MethodSpec("vsknn", "V-SKNN", baseline=True, reference=Ref("semrec_worker.models.knn:vsknn_reference")),
    MethodSpec("cooc", "Co-occurrence", baseline=True, reference=Ref("semrec_worker.models.knn:cooc_reference")),
    MethodSpec("random", "Random", baseline=True, stage2=SEQREC, cell=lambda inputs: {"init": "random"}),
    MethodSpec(
        "lh", "LH", stage2=SEQREC, cell=_table_init,
        table=TableBuild(TrainLHConfig, Ref("semrec_worker.methods.lh:train_lh"),
                         "LH baseline: item = the LM's last hidden state of its caption (ItemTable in the run directory).",
                         lambda grid: {"llm": grid.llm}),
    ),
    MethodSpec(
        "llm2x", "LLM2X", stage2=SEQREC, cell=_table_init,
        table=TableBuild(TrainLLM2XConfig, Ref("semrec_worker.methods.llm2x:train_llm2x"),
                         "LLM2X: text-encoder embeddings of the captions, PCA to the backbone width (ItemTable).",
                         lambda grid: {"text_encoder": grid.text_encoder, "dim": grid.dim or 256}),
    ),
    MethodSpec(
        "llm2bert4rec", "LLM2BERT4Rec", stage2=SEQREC,
        cell=lambda inputs: {**only_bert4rec(inputs.backbone), **_table_init(inputs)},
        table=TableBuild(TrainLLM2BERT4RecConfig, Ref("semrec_worker.methods.llm2bert4rec:train_llm2bert4rec"),
                         "LLM2BERT4Rec (Harte et al.): the LLM2X table, PCA to BERT4Rec's width, as the initial item "
                         "embeddings of a BERT4Rec backbone (ItemTable; train with --backbone bert4rec).",
                         lambda grid: {"text_encoder": grid.text_encoder, "dim": grid.dim or 256}),
    ),
    MethodSpec(
        "said", "SAID", stage2=SEQREC, cell=_table_init,
        table=TableBuild(TrainSAIDConfig, Ref("semrec_worker.methods.said.trainer:train_said"),
                         "SAID stage 1: learn item embeddings that make a frozen LM reproduce each item's caption "
                         "(progress bar, checkpoints, --resume-from RUN_DIR [--only-new], early stop on generation accuracy).",
                         lambda grid: {"llm": grid.llm, "max_train_minutes": grid.stage1_max_train_minutes,
                                       "threads": grid.threads}),
        stage2_hook=Ref("semrec_worker.methods.said.refresh_encoder:after_stage2"),
        refresh_encoder=Ref("semrec_worker.methods.said.refresh_encoder:SAIDItemEncoder"),
    ),
    MethodSpec(
        "llmemb", "LLMEmb", stage2=LLMEMB_RAT, cell=_rat_cell, needs_sasrec=True,
        table=TableBuild(TrainLLMEmbConfig, Ref("semrec_worker.methods.llmemb.job:train_llmemb"),
                         "LLMEmb stage 1 (SCFT): LoRA contrastive fine-tuning of the LM on attribute-dropped item "
                         "prompts, then mean-pooled item embeddings (adapter + ItemTable; resumes from the run's "
                         "checkpoint).",
                         lambda grid: {"llm": grid.llm, "max_train_minutes": grid.stage1_max_train_minutes}),
        refresh_encoder=Ref("semrec_worker.methods.llmemb.refresh_encoder:LLMEmbItemEncoder"),
    ),
    MethodSpec("tslrec", "TSLRec", stage2=TSLREC, cell=_tslrec_cell, needs_sasrec=True),
):
    register(_spec)


# ------------------------------------------------------------------------------------------------- queries


def get(name: str) -> MethodSpec:
    if name not in SPECS:
        raise UserError(f"unknown method {name!r} (known: {', '.join(SPECS)})")
    return SPECS[name]


def names() -> list[str]:
    return list(SPECS)


def label(name: str) -> str:
    return SPECS[name].label if name in SPECS else name


def baselines() -> list[str]:
    return [s.name for s in SPECS.values() if s.baseline]


def llm_initialised() -> list[str]:
    return [s.name for s in SPECS.values() if not s.baseline]


def without_backbone() -> list[str]:
    return [s.name for s in SPECS.values() if not s.has_backbone]


def with_table() -> list[str]:
    return [s.name for s in SPECS.values() if s.table is not None]


def stage2_entries() -> list[Stage2]:
    """Every stage 2 of the registry, once each (SEQREC first): the `semrec train` commands that train a backbone."""
    out = {SEQREC.command: SEQREC}
    for spec in SPECS.values():
        if spec.stage2 is not None:
            out.setdefault(spec.stage2.command, spec.stage2)
    return list(out.values())


def stage2_of_kind(kind: str) -> Stage2 | None:
    """The stage 2 whose config class is named `kind` (a saved config.json's `kind`)."""
    return next((entry for entry in stage2_entries() if entry.config.__name__ == kind), None)


def item_layers() -> dict[str, ItemLayer]:
    """Every item layer a run can name in its config.json, by name."""
    layers = {layer.name: layer for layer in BUILT_IN_ITEM_LAYERS}
    for entry in stage2_entries():
        if entry.item_layer is not None:
            layers[entry.item_layer.name] = entry.item_layer
    return layers


def train_commands() -> dict[str, Callable[[JobConfig], Any]]:
    """`semrec train <command>` -> its run function, for every table build and every stage 2."""
    out: dict[str, Ref] = {}
    for spec in SPECS.values():
        if spec.table is not None:
            out[spec.name] = spec.table.run
        if spec.stage2 is not None:
            out[spec.stage2.command] = spec.stage2.run
    return {command: ref.load() for command, ref in out.items()}


# ----------------------------------------------------------------------------------------------- stage 2


def after_stage2(run: Any) -> None:
    """The trainer's `after_training` hook for `semrec train seqrec`: the hook of the method whose table
    initialised the run (nothing for random init or a caller's own item layer)."""
    spec = SPECS.get(run.init_method)
    if spec is not None and spec.stage2_hook is not None and not run.custom_item_embedding:
        spec.stage2_hook.load()(run)


def train_backbone(config: SeqRecConfig, dataset: Any = None):
    """`semrec train seqrec`: the seqrec trainer with the stage-2 hook of the initialising table's method
    (e.g. a SAID-initialised run also gets its `said` refresh encoder)."""
    from semrec_worker.training.trainer import train_seqrec  # torch only when the job runs

    return train_seqrec(config, dataset=dataset, after_training=after_stage2)


# ------------------------------------------------------------------------------------------ refresh encoders


def encoder_loaders() -> dict[str, Callable[[Path], Any]]:
    loaders: dict[str, Callable[[Path], Any]] = {LinearTextMapEncoder.kind: LinearTextMapEncoder.load,
                                                 ItemLayerEncoder.kind: ItemLayerEncoder.load}
    for spec in SPECS.values():
        if spec.refresh_encoder is not None:
            loaders[spec.name] = lambda directory, ref=spec.refresh_encoder: ref.load().load(directory)
    return loaders


KIND_ALIASES = {"text-map": LinearTextMapEncoder.kind}


def load_item_encoder(run_or_dir: str | Path, kind: str = "auto"):
    """The run's refresh encoder: "auto" = the default one (RUN_DIR/refresh_encoder/encoder.json), or the
    named kind (the default if it is of that kind, else RUN_DIR/refresh_encoder/<kind>/)."""
    directory = Path(run_or_dir)
    if (directory / ENCODER_DIRNAME).is_dir() or not (directory / SPEC_FILE).exists():
        directory = directory / ENCODER_DIRNAME
    wanted = KIND_ALIASES.get(kind, kind)
    saved = encoder_kind(directory)
    if wanted != "auto" and saved != wanted and encoder_kind(directory / wanted) == wanted:
        directory, saved = directory / wanted, wanted
    how = ("train it with `semrec train llmemb-rat` (llmemb) or `semrec train seqrec --init <SAID run>` (said), "
           "build it for an existing run with `semrec export refresh-encoder --run RUN --kind ...`, or publish "
           "with --refresh-encoder minilm|hashing (text-map)")
    if saved is None:
        raise UserError(f"{directory}: the run has no refresh encoder ({SPEC_FILE} missing): {how}")
    if wanted != "auto" and wanted != saved:
        raise UserError(f"--encoder {kind}: the run has no {wanted!r} refresh encoder (its default is {saved!r}, "
                        f"in {directory}); {how}")
    loaders = encoder_loaders()
    if saved not in loaders:
        raise UserError(f"{directory / SPEC_FILE}: unknown encoder kind {saved!r}; known: {sorted(loaders)}")
    return loaders[saved](directory)
