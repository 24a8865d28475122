"""`train_seqrec`: train a sequential recommender, early-stop on validation, evaluate on test, save the run.

Python API (what other methods call for their stage-2 comparisons)::

    from semrec_worker.training import SeqRecConfig, train_seqrec

    result = train_seqrec(
        SeqRecConfig(data="../shared/datasets/amazon2018-scientific", backbone="sasrec",
                     init="runs/said/item_table.npz", loss="said_cosine", out="runs/sasrec-said"),
        dataset=None,          # or an already loaded SequenceDataset (skips loading `config.data`)
        item_embedding=None,   # or any nn.Module with .weight [n_items + 1, dim] and forward(ids)
        extra_loss=None,       # or a callable(model=, items=, hidden=, targets=) -> scalar tensor
        after_training=None,   # or a callable(FinishedRun): what a method adds to the run (its refresh encoder)
        job=None,              # or the stage-2 config (with a `seqrec` part) saved as the run's config.json
    )
    result.runs          # test RunResults (results schema), also in RUN_DIR/results.json
    result.model         # the encoder with the best validation weights
    result.item_table    # trained item embeddings (ItemTable, dataset order)

`item_embedding` replaces the layer that `config.model.init` / `config.model.projection` / `config.model.freeze_items` would
build (e.g. LLMEmb's adapter over frozen LM embeddings); its `weight` property is read once per step as the
candidate matrix of the loss. `extra_loss` is added to the recommendation loss at every step (already
weighted by the caller), e.g. LLMEmb's collaborative alignment loss (eq. 7). `after_training` is called once
on the main process when the run is saved (the trainer knows no method: the method registry passes the
stage-2 hook of the method whose table initialised the run, e.g. SAID's refresh encoder).

RUN_DIR: config.json, metrics.json (per-epoch loss + validation metrics + seconds, final test results,
initialisation report, peak memory, `cut_short` when --max-train-minutes ran out), model.pt (best
state_dict), checkpoint.pt (resumable: --resume), item_table.npz, popularity.npy (training counts, for the
bundle), results.json, test_ranks.npz (each test case's target and rank per protocol, for breakdowns such as
NDCG by item-popularity group); plus whatever `after_training` adds (for a run initialised from a SAID table
through `semrec train seqrec`: refresh_encoder/, the `said` item encoder of `semrec refresh`).
"""

from __future__ import annotations

import copy
import json
import math
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from semrec.cli_builder import echo
from semrec.config import JobConfig
from semrec.errors import UserError
from semrec.item_table import ItemTable, utc_now
from semrec.results import RunResult, write_results
from torch import nn
from tqdm import tqdm

from semrec_worker.backbones import SequenceEncoder, build_backbone, build_item_embedding
from semrec_worker.backbones.item_embedding import BUILT_IN_ITEM_LAYERS, InitReport, build_item_layer
from semrec_worker.data.dataset import SYNTHETIC, SequenceDataset, load_dataset
from semrec_worker.evaluation import EvalSettings, evaluate
from semrec_worker.evaluation.jobs import TEST_RANKS, evaluate_runs
from semrec_worker.losses import HistoryShift, build_loss
from semrec_worker.training import distributed
from semrec_worker.training.config import SeqRecConfig
from semrec_worker.training.data import WindowBatches, augmented
from semrec_worker.training.finite import NonFiniteError, ensure_finite_loss, ensure_finite_scores
from semrec_worker.training.recommender import SeqRecRecommender

ExtraLoss = Callable[..., torch.Tensor]
CHECKPOINT = "checkpoint.pt"


@dataclass
class FinishedRun:
    """A saved run as the `after_training` hook sees it."""

    run_dir: Path
    config: SeqRecConfig
    dataset: SequenceDataset
    model: SequenceEncoder
    item_table: ItemTable
    init_method: str  # the `method` of the table that initialised the item layer ("random", "said", ...)
    custom_item_embedding: bool  # the caller passed its own item layer (RAT, TSLRec)


AfterTraining = Callable[[FinishedRun], object]


@dataclass
class TrainResult:
    model: SequenceEncoder
    runs: list[RunResult]
    history: list[dict[str, Any]]
    best_epoch: int
    best_valid: float
    item_table: ItemTable
    run_dir: Path
    init: dict[str, Any] = field(default_factory=dict)


def load_init_table(init: str) -> ItemTable | None:
    if init == "random":
        return None
    path = Path(init).expanduser()
    if not path.exists():
        raise UserError(f"--init {init}: no such file or run directory (or use --init random)")
    table = ItemTable.load(path)
    table.metadata.setdefault("path", str(path))
    return table


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def build_model(
    config: SeqRecConfig,
    dataset: SequenceDataset,
    item_embedding: nn.Module | None,
) -> tuple[SequenceEncoder, InitReport, str]:
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    if item_embedding is None:
        table = load_init_table(config.model.init)
        if table is not None:
            fingerprint, name = table.metadata.get("dataset_fingerprint"), table.metadata.get("dataset")
            # without a fingerprint field, "dataset" may hold the fingerprint (tables of older versions)
            if (fingerprint != dataset.fingerprint) if fingerprint else (name not in (None, dataset.name, dataset.fingerprint)):
                echo(f"warning: table was built for dataset {name} ({fingerprint}), this is {dataset.name} "
                     f"({dataset.fingerprint}); rows are matched by item id")
        layer = config.model.items
        if layer.item_layer == "init":
            item_embedding, report = build_item_embedding(
                dataset.item_ids, config.model.dim, table, config.model.projection, config.model.freeze_items, generator,
                whiten=layer.init_start == "whitened",
            )
        else:
            item_embedding, report = build_item_layer(
                layer.item_layer, dataset.item_ids, config.model.dim, table, layer.fusion, layer.adapter_hidden,
                layer.id_init, generator, layer.adapter_start, layer.init_start,
            )
        method = str(table.metadata.get("method", "table")) if table is not None else "random"
    else:
        report = InitReport(source="custom", method=str(getattr(item_embedding, "method", "custom")))
        method = report.method
    rows = item_embedding.weight.shape[0]
    if rows != dataset.n_items + 1:
        raise UserError(f"item embedding has {rows} rows, the dataset needs n_items + 1 = {dataset.n_items + 1}")
    model = build_backbone(config.model.backbone, item_embedding, **config.model.backbone_settings())
    return model, report, method


class FiniteScores:
    """A recommender whose scores are checked: NonFiniteError instead of ranking NaN/inf scores."""

    def __init__(self, recommender: SeqRecRecommender, where: str) -> None:
        self.recommender, self.where = recommender, where

    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        out = self.recommender.score(histories)
        ensure_finite_scores(out, self.where)
        return out


def validation_metric(
    model: SequenceEncoder, dataset: SequenceDataset, similarity: str, metric: str, epoch: int | None = None
) -> dict:
    where = f"validation after epoch {epoch}" if epoch is not None else "validation"
    recommender = FiniteScores(SeqRecRecommender(model, similarity), where)
    result = evaluate(recommender, dataset, "valid", EvalSettings(protocol="full"))
    if metric not in result.metrics:
        raise UserError(f"--valid-metric {metric}: choose from {', '.join(result.metrics)}")
    if not all(math.isfinite(v) for v in result.metrics.values()):
        raise NonFiniteError(f"{where}: non-finite metrics {result.metrics}")
    return result.metrics


def train_seqrec(
    config: SeqRecConfig,
    dataset: SequenceDataset | None = None,
    item_embedding: nn.Module | None = None,
    extra_loss: ExtraLoss | None = None,
    after_training: AfterTraining | None = None,
    job: JobConfig | None = None,
) -> TrainResult:
    ctx = distributed.setup(config.runtime.device)
    try:
        return _train(config, ctx, dataset, item_embedding, extra_loss, after_training, job)
    finally:
        distributed.teardown(ctx)


def _train(
    config: SeqRecConfig,
    ctx: distributed.Context,
    dataset: SequenceDataset | None,
    item_embedding: nn.Module | None,
    extra_loss: ExtraLoss | None,
    after_training: AfterTraining | None,
    job: JobConfig | None = None,
) -> TrainResult:
    if config.runtime.threads:
        torch.set_num_threads(config.runtime.threads)
    run_dir = Path(config.out)
    checkpoint_path = run_dir / CHECKPOINT
    if checkpoint_path.exists() and not config.resume:
        raise UserError(f"{run_dir} already holds a run: pass --resume to continue it, or choose another --out")
    if config.resume and not checkpoint_path.exists():
        raise UserError(f"--resume: {checkpoint_path} not found")
    if config.model.init != "random" and not Path(config.model.init).expanduser().exists():  # before the data loads
        raise UserError(f"--init {config.model.init}: no such file or run directory (or use --init random)")
    dataset = dataset if dataset is not None else load_dataset(config.dataset)
    config = portable(config, dataset)
    model, init_report, method = build_model(config, dataset, item_embedding)
    model.to(ctx.device)
    loss_fn = build_loss(
        config.objective.loss, config.objective.temperature, config.objective.n_negatives, config.objective.negative_sampler, dataset.item_counts("train")
    ).to(ctx.device)
    batches = WindowBatches(augmented(dataset.train_sequences(), config.optimisation.augment), config.model.max_len, config.optimisation.batch_size, config.seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameter_groups(model, config), lr=config.optimisation.lr,
                                  weight_decay=config.optimisation.weight_decay)
    train_model: nn.Module = TrainingPairs(model)
    if ctx.distributed:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(train_model, device_ids=ids)

    history: list[dict[str, Any]] = []
    best_valid, best_epoch, bad_epochs, start_epoch = -math.inf, 0, 0, 1
    best_state = copy.deepcopy(model.state_dict())
    if config.resume:
        state = torch.load(checkpoint_path, map_location=ctx.device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        best_state, history = state["best_state"], state["history"]
        best_valid, best_epoch, bad_epochs = state["best_valid"], state["best_epoch"], state["bad_epochs"]
        start_epoch = state["epoch"] + 1
        if ctx.is_main:
            echo(f"resuming {run_dir} after epoch {state['epoch']} (best {config.optimisation.valid_metric} {best_valid:.4f})")
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        saved = job.model_copy(update={"seqrec": config}) if job is not None else config
        saved.save(run_dir, parts=run_parts(model, extra_loss, method))
        echo(
            f"{dataset.name}: {dataset.n_users} users, {dataset.n_items} items | {config.model.backbone} dim={config.model.dim} "
            f"loss={config.objective.loss} init={method} | {len(batches.padded)} windows, {batches.n_targets} targets, "
            f"{len(batches)} steps/epoch, {ctx.world_size} process(es) on {ctx.device}"
        )

    stopped_early = bad_epochs >= config.optimisation.patience
    train_start = time.perf_counter()
    deadline = train_start + 60 * config.optimisation.max_train_minutes if config.optimisation.max_train_minutes else math.inf
    cut_short = False
    for epoch in range(start_epoch, config.optimisation.epochs + 1):
        if stopped_early or cut_short:
            break
        train_model.train()
        epoch_start, epoch_cpu = time.perf_counter(), time.process_time()
        loss_generator = torch.Generator(device=ctx.device).manual_seed(
            config.seed * 7919 + epoch * 104_729 + ctx.rank
        )
        total, count = 0.0, 0
        progress = tqdm(
            batches.epoch(epoch, ctx.rank, ctx.world_size),
            total=len(batches),
            desc=f"epoch {epoch}",
            disable=not ctx.is_main,
            mininterval=2.0,
            leave=False,
        )
        partial = False
        count_steps = 0
        for batch in progress:
            # data-parallel ranks must run the same steps, so they only stop between epochs (below)
            if not ctx.distributed and count and time.perf_counter() > deadline:
                partial = True
                break
            windows, noise = batch.windows.to(ctx.device), batch.noise.to(ctx.device)
            hidden, targets = train_model(windows, noise)
            n_global = distributed.all_sum(torch.tensor(float(len(targets)), device=ctx.device), ctx)
            items = model.item_embedding.weight
            shift = history_shift(model, windows, noise)
            loss = loss_fn(hidden, targets, items, loss_generator, reduction="sum", history=shift) / n_global * ctx.world_size
            if extra_loss is not None:
                loss = loss + extra_loss(model=model, items=items, hidden=hidden, targets=targets)
            _stop_unless_finite(loss, f"epoch {epoch}, step {count_steps + 1}", ctx)
            count_steps += 1
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.optimisation.grad_clip:
                nn.utils.clip_grad_norm_(trainable, config.optimisation.grad_clip)
            optimizer.step()
            total += float(loss.detach()) / ctx.world_size * float(n_global)
            count += len(targets)
            progress.set_postfix(loss=f"{float(loss.detach()) / ctx.world_size:.4f}", refresh=False)
        train_s, train_cpu_s = time.perf_counter() - epoch_start, time.process_time() - epoch_cpu
        epoch_loss = float(distributed.all_sum(torch.tensor(total, device=ctx.device), ctx)) / max(
            float(distributed.all_sum(torch.tensor(float(count), device=ctx.device), ctx)), 1.0
        )
        valid: dict[str, float] = {}
        score = 0.0
        if ctx.is_main:
            eval_start = time.perf_counter()
            valid = validation_metric(model, dataset, loss_fn.similarity, config.optimisation.valid_metric, epoch)
            score = valid[config.optimisation.valid_metric]
            eval_s = time.perf_counter() - eval_start
        score = distributed.broadcast_float(score, ctx)
        improved = score > best_valid
        if improved:
            best_valid, best_epoch, bad_epochs = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
        stopped_early = bad_epochs >= config.optimisation.patience
        over_budget = distributed.broadcast_float(float(time.perf_counter() > deadline), ctx) > 0
        cut_short = over_budget and not stopped_early and epoch < config.optimisation.epochs
        if ctx.is_main:
            record = {"epoch": epoch, "loss": round(epoch_loss, 5), "train_s": round(train_s, 2),
                      "train_cpu_s": round(train_cpu_s, 2), "valid_s": round(eval_s, 2), "valid": valid, "peak_rss_mib": peak_rss_mib()}
            record.update(history_biases(model, digits=5))
            if partial:
                record["partial"] = True  # the budget ran out inside this epoch
            history.append(record)
            echo(
                f"epoch {epoch}: loss {epoch_loss:.4f} | valid {config.optimisation.valid_metric} {score:.4f}"
                f"{' (best)' if improved else f' (best {best_valid:.4f} @ {best_epoch})'} | "
                f"{train_s:.1f} s train, {eval_s:.1f} s valid"
            )
            torch.save(
                {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                 "best_state": best_state, "best_valid": best_valid, "best_epoch": best_epoch,
                 "bad_epochs": bad_epochs, "history": history},
                checkpoint_path,
            )
        distributed.barrier(ctx)
    train_total_s = time.perf_counter() - train_start

    model.load_state_dict(best_state)
    model.eval()
    item_table = trained_item_table(model, dataset, config, method)
    runs: list[RunResult] = []
    if ctx.is_main:
        if stopped_early:
            echo(f"early stop: no better {config.optimisation.valid_metric} for {config.optimisation.patience} epochs")
        if cut_short:
            echo(f"cut short: the {config.optimisation.max_train_minutes} min training budget ran out after {len(history)} "
                 f"epoch(s); evaluating the best epoch ({best_epoch})")
        if config.evaluation.evaluate_test:
            runs = evaluate_runs(
                SeqRecRecommender(model, loss_fn.similarity),
                dataset,
                config.evaluation,
                method,
                backbone=config.model.backbone,
                loss=config.objective.loss,
                seed=config.seed,
                train_s=train_total_s,
                extra_config={**config.flat(), "best_epoch": best_epoch, "epochs_run": len(history),
                              "world_size": ctx.world_size, "cut_short": cut_short},
                ranks_path=run_dir / TEST_RANKS,
            )
        else:
            echo("test split not evaluated (--no-evaluate-test): the run holds validation results only")
        _write_run(run_dir, config, model, item_table, dataset, history, runs, init_report, best_epoch, best_valid,
                   ctx, loss_fn.similarity, batches, cut_short, train_total_s)
        if after_training is not None:
            after_training(FinishedRun(run_dir, config, dataset, model, item_table, method, item_embedding is not None))
    distributed.barrier(ctx)
    return TrainResult(model, runs, history, best_epoch, best_valid, item_table, run_dir, asdict(init_report))


def parameter_groups(model: SequenceEncoder, config: SeqRecConfig) -> list[dict[str, Any]]:
    """AdamW groups: every trainable weight at --lr, and the history bias (a scalar Adam moves by about its
    learning rate per step) in its own group at --history-bias-lr, without weight decay."""
    biases = [p for p in (model.history_bias, model.last_item_bias) if p is not None]
    weights = [p for p in model.parameters() if p.requires_grad and all(p is not b for b in biases)]
    if not biases:
        return [{"params": weights}]
    return [{"params": weights},
            {"params": biases, "lr": config.optimisation.history_bias_lr or config.optimisation.lr, "weight_decay": 0.0}]


def history_biases(model: SequenceEncoder, digits: int | None = None) -> dict[str, float]:
    """The learned history biases' current values ({} without the option), for metrics.json."""
    out = {}
    for name in ("history_bias", "last_item_bias"):
        value = getattr(model, name)
        if value is not None:
            out[name] = round(float(value.detach()), digits) if digits is not None else float(value.detach())
    return out


def history_shift(model: SequenceEncoder, windows: torch.Tensor, noise: torch.Tensor) -> HistoryShift | None:
    """The learned history bias of a batch's training positions (None: the model has none)."""
    if model.history_bias is None:
        return None
    last = model.training_last_item(windows, noise) if model.last_item_bias is not None else None
    return HistoryShift.of(model.training_history(windows, noise), model.n_items + 1, model.history_bias, last,
                           model.last_item_bias)


def portable(config: SeqRecConfig, dataset: SequenceDataset) -> SeqRecConfig:
    """The config as the run saves it: the data path absolute and the dataset's fingerprint recorded, so the
    saved config re-runs from any working directory on the same data. A config that already names a
    fingerprint (a saved run re-run) must match the data it was given (UserError otherwise)."""
    expected = config.dataset.fingerprint
    if expected is not None and expected != dataset.fingerprint:
        raise UserError(
            f"--data {config.dataset.data}: dataset fingerprint {dataset.fingerprint} differs from the "
            f"config's --fingerprint {expected} (the data or its filtering changed since the run was saved; "
            "pass --fingerprint with the new value, or the same data)"
        )
    data = config.dataset.data
    path = Path(data).expanduser()
    if not data.startswith(SYNTHETIC) and path.exists():
        data = str(path.resolve())
    return config.model_copy(update={"dataset": config.dataset.model_copy(
        update={"data": data, "fingerprint": dataset.fingerprint})})


def part_name(obj: object) -> str:
    """The name a part is rebuilt by (its `part_name`, e.g. "llmemb-adapter"); "module:Class" if it has none."""
    named = getattr(obj, "part_name", None) or BUILT_IN_ITEM_LAYERS.get(type(obj))
    return str(named) if named else f"{type(obj).__module__}:{type(obj).__qualname__}"


def run_parts(model: SequenceEncoder, extra_loss: ExtraLoss | None, init_method: str) -> dict[str, Any]:
    """The pluggable parts of a run, recorded in its config.json beside the settings: the backbone, the item
    layer and the extra loss by the names `model_from_config` rebuilds them by."""
    return {"backbone": model.name, "item_layer": part_name(model.item_embedding),
            "extra_loss": part_name(extra_loss) if extra_loss is not None else None, "init_method": init_method}


def _stop_unless_finite(loss: torch.Tensor, where: str, ctx: distributed.Context) -> None:
    """NonFiniteError on every rank when the loss of any rank is NaN/inf (ranks must stop together)."""
    if not ctx.distributed:
        ensure_finite_loss(loss, where)
        return
    bad = torch.tensor(float(not torch.isfinite(loss.detach()).all()), device=ctx.device)
    n_bad = int(distributed.all_sum(bad, ctx))
    if n_bad:
        ensure_finite_loss(loss, f"{where} on rank {ctx.rank}")  # raises here if this rank's loss is bad
        raise NonFiniteError(f"training loss is not finite on {n_bad} other rank(s) at {where}: stopping")


class TrainingPairs(nn.Module):
    """`encoder.training_pairs` as a forward pass, so DDP's gradient synchronisation hooks see it."""

    def __init__(self, encoder: SequenceEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, windows: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder.training_pairs(windows, noise)


def trained_item_table(model: SequenceEncoder, dataset: SequenceDataset, config: SeqRecConfig, method: str) -> ItemTable:
    with torch.no_grad():
        vectors = model.item_embedding.weight.detach().float().cpu().numpy()[1:]
    return ItemTable(
        dataset.item_ids,
        vectors,
        {
            "method": "seqrec",
            "init_method": method,
            "item_layer": config.model.items.item_layer,
            "backbone": config.model.backbone,
            "loss": config.objective.loss,
            "dataset": dataset.name,
            "dataset_fingerprint": dataset.fingerprint,
            "source_run": str(config.out),
            "created_at": utc_now(),
        },
    )


def _write_run(
    run_dir: Path,
    config: SeqRecConfig,
    model: SequenceEncoder,
    item_table: ItemTable,
    dataset: SequenceDataset,
    history: list[dict[str, Any]],
    runs: list[RunResult],
    init_report: InitReport,
    best_epoch: int,
    best_valid: float,
    ctx: distributed.Context,
    similarity: str,
    batches: WindowBatches,
    cut_short: bool = False,
    train_total_s: float | None = None,
) -> None:
    torch.save(model.state_dict(), run_dir / "model.pt")
    item_table.save(run_dir / "item_table.npz")
    np.save(run_dir / "popularity.npy", dataset.item_counts("train")[1:].astype(np.float32))
    train_seconds = [h["train_s"] for h in history]
    metrics = {
        "dataset": {"name": dataset.name, "fingerprint": dataset.fingerprint, "n_items": dataset.n_items,
                    "n_users": dataset.n_users},
        "model": {"backbone": config.model.backbone, "dim": config.model.dim, "max_len": config.model.max_len, "loss": config.objective.loss,
                  "similarity": similarity,
                  "parameters": sum(p.numel() for p in model.parameters()),
                  "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)},
        "init": asdict(init_report),
        "epochs": history,
        "best_epoch": best_epoch,
        "best_valid": {config.optimisation.valid_metric: best_valid},
        **history_biases(model),
        "epochs_run": len(history),
        "cut_short": cut_short,
        "max_train_minutes": config.optimisation.max_train_minutes,
        "train_s_total": round(train_total_s, 2) if train_total_s is not None else None,
        "seconds_per_epoch": round(float(np.mean(train_seconds)), 3) if train_seconds else None,
        "cpu_seconds_per_epoch": round(float(np.mean([h.get("train_cpu_s", np.nan) for h in history])), 3)
        if history
        else None,
        "peak_rss_mib": peak_rss_mib(),
        "world_size": ctx.world_size,
        "device": str(ctx.device),
        "threads": torch.get_num_threads(),
        "train_windows": len(batches.padded),
        "train_targets": batches.n_targets,
        "steps_per_epoch": len(batches),
        "test": [r.model_dump(mode="json") for r in runs],
    }
    metrics["test_evaluated"] = config.evaluation.evaluate_test
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if not config.evaluation.evaluate_test:  # a tuning run: validation only, no results.json to collect
        echo(f"run saved to {run_dir}")
        return
    write_results(run_dir / "results.json", runs)
    if config.results is not None:
        write_results(config.results, runs, append=True)
        echo(f"results appended to {config.results}")
    echo(f"run saved to {run_dir}")
