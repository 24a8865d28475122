"""The recipe sweep of `semrec bench recipe`: coordinate descent over training settings on validation only.

Cell layout: RUNS_DIR/<backbone>/<init label>/<setting key>/ is a `semrec train seqrec --no-evaluate-test`
run directory. A cell whose metrics.json exists is reused; a cell with only a checkpoint resumes. The test
split is read once per sweep, for the chosen cell, from its saved best model (RUN_DIR/results.json).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semrec.cli_builder import echo
from semrec.item_table import ItemTable
from semrec.results import RunResult, read_results, write_results

from semrec_worker.data.dataset import SequenceDataset
from semrec_worker.evaluation.jobs import TEST_RANKS, EvalJobConfig, evaluate_runs
from semrec_worker.experiments.config import RECIPE_AXES, RecipeConfig
from semrec_worker.experiments.config import command_line as flags_command_line
from semrec_worker.export.onnx import load_run_encoder
from semrec_worker.training import SeqRecConfig, train_seqrec
from semrec_worker.training.recommender import SeqRecRecommender

METRICS = "metrics.json"
SHORT = {"loss": "loss", "augment": "aug", "dropout": "do", "lr": "lr", "dim": "dim", "max_len": "len"}


@dataclass
class Cell:
    backbone: str
    init: str  # label: "random" or the table's method
    settings: dict[str, Any]
    path: Path
    step: str  # "start" or the axis this cell varied
    valid: dict[str, float] = field(default_factory=dict)
    best_epoch: int = 0
    epochs_run: int = 0
    seconds_per_epoch: float | None = None
    cut_short: bool = False
    reused: bool = False
    command: str = ""  # the `semrec bench recipe` line of the sweep

    @property
    def score(self) -> float:
        return self.valid.get("ndcg@10", float("-inf"))

    def row(self, dataset: str) -> RunResult:
        return RunResult(dataset=dataset, method=self.init, backbone=self.backbone, loss=self.settings["loss"],
                         protocol="full", seed=None, metrics=self.valid,
                         config={"split": "valid", "sweep_step": self.step, **self.settings,
                                 "best_epoch": self.best_epoch, "epochs_run": self.epochs_run,
                                 "seconds_per_epoch": self.seconds_per_epoch, "cut_short": self.cut_short,
                                 "run_dir": str(self.path), "command": self.command})


def command_line(config: RecipeConfig) -> str:
    """The `semrec bench recipe` flags that differ from the defaults (what reproduces this report)."""
    return flags_command_line("semrec bench recipe", config)


def init_label(init: str) -> str:
    if init == "random":
        return "random"
    return str(ItemTable.load(Path(init).expanduser()).metadata.get("method") or Path(init).stem)


def setting_key(settings: dict[str, Any]) -> str:
    return ",".join(f"{SHORT[a]}={settings[a]}" for a in RECIPE_AXES)


def cell_config(config: RecipeConfig, backbone: str, init: str, settings: dict[str, Any], out: Path) -> SeqRecConfig:
    extra: dict[str, Any] = {"batch_size": config.batch_size} if config.batch_size else {}
    if config.max_train_minutes:
        extra["max_train_minutes"] = config.max_train_minutes
    return SeqRecConfig(
        data=config.data, format=config.format, kcore=config.kcore, history_cap=config.history_cap,
        drop_unknown_items=config.drop_unknown_items, backbone=backbone, init=init, seed=config.seed,
        epochs=config.epochs, patience=config.patience, threads=config.threads, evaluate_test=False,
        out=out, resume=(out / "checkpoint.pt").exists(), **settings, **extra,
    )


@dataclass
class Finished:
    """What a finished `semrec train seqrec` run directory says about validation."""

    valid: dict[str, float]  # the best epoch's validation metrics
    best_epoch: int
    epochs_run: int
    seconds_per_epoch: float | None
    cut_short: bool


def finished_run(run_dir: Path) -> Finished | None:
    """A seqrec run's validation summary from its metrics.json; None when it has not finished."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return None
    metrics = json.loads(path.read_text())
    best = metrics["best_epoch"]
    return Finished(valid=next(h["valid"] for h in metrics["epochs"] if h["epoch"] == best), best_epoch=best,
                    epochs_run=metrics["epochs_run"], seconds_per_epoch=metrics.get("seconds_per_epoch"),
                    cut_short=bool(metrics.get("cut_short")))


def read_cell(cell: Cell) -> bool:
    """Fill a cell from its run directory; False when it has not finished."""
    done = finished_run(cell.path)
    if done is None:
        return False
    cell.valid, cell.best_epoch, cell.epochs_run = done.valid, done.best_epoch, done.epochs_run
    cell.seconds_per_epoch, cell.cut_short = done.seconds_per_epoch, done.cut_short
    return True


def run_cell(cell: Cell, config: RecipeConfig, init: str, dataset: SequenceDataset) -> Cell:
    if read_cell(cell):
        cell.reused = True
        echo(f"{cell.backbone}/{cell.init} {setting_key(cell.settings)}: reused (valid ndcg@10 {cell.score:.4f})")
        return cell
    started = time.perf_counter()
    train_seqrec(cell_config(config, cell.backbone, init, cell.settings, cell.path), dataset=dataset)
    read_cell(cell)
    echo(f"{cell.backbone}/{cell.init} {setting_key(cell.settings)}: valid ndcg@10 {cell.score:.4f} "
         f"@ epoch {cell.best_epoch} ({time.perf_counter() - started:.0f} s)")
    return cell


def sweep(config: RecipeConfig, backbone: str, init: str, dataset: SequenceDataset, runs_dir: Path,
          on_cell=lambda cells: None) -> list[Cell]:
    """Coordinate descent: the first value of every axis, then each axis in turn with the rest at the best."""
    label, axes = init_label(init), config.axis_values()
    cells: list[Cell] = []
    done: dict[str, Cell] = {}

    def visit(settings: dict[str, Any], step: str) -> Cell:
        key = setting_key(settings)
        if key not in done:
            cell = Cell(backbone, label, dict(settings), runs_dir / backbone / label / key, step,
                        command=command_line(config))
            done[key] = run_cell(cell, config, init, dataset)
            cells.append(cell)
            on_cell(cells)
        return done[key]

    best = visit({a: axes[a][0] for a in RECIPE_AXES}, "start")
    for axis in RECIPE_AXES:
        for value in axes[axis][1:]:
            cell = visit({**best.settings, axis: value}, axis)
            if cell.score > best.score:
                best = cell
    return cells


def chosen(cells: list[Cell]) -> Cell:
    best = cells[0]
    for cell in cells[1:]:
        if cell.score > best.score:
            best = cell
    return best


def evaluate_chosen(cell: Cell, config: RecipeConfig, dataset: SequenceDataset) -> list[RunResult]:
    """The chosen cell's saved best model on the test split (once; kept in RUN_DIR/results.json)."""
    results = cell.path / "results.json"
    if results.exists():
        return read_results(results).runs
    encoder, run_config, _, metrics = load_run_encoder(cell.path)
    eval_config = EvalJobConfig(data=config.data, format=config.format, kcore=config.kcore,
                                history_cap=config.history_cap, drop_unknown_items=config.drop_unknown_items,
                                protocols=config.protocols)
    runs = evaluate_runs(SeqRecRecommender(encoder, metrics["model"]["similarity"]), dataset, eval_config, cell.init,
                         backbone=cell.backbone, loss=run_config.loss, seed=run_config.seed,
                         extra_config={"split": "test", "selected_on": "valid ndcg@10", **cell.settings,
                                       "best_epoch": cell.best_epoch, "run_dir": str(cell.path),
                                       "command": cell.command},
                         ranks_path=cell.path / TEST_RANKS)
    write_results(results, runs)
    return runs


def write_sweep(out: Path, dataset: str, cells: list[Cell], tests: list[RunResult]) -> None:
    """The sweep JSON: every cell's validation row and the chosen cells' test rows; rows of other
    (backbone, init) sweeps already in the file are kept."""
    mine = {(c.backbone, c.init) for c in cells}
    kept = [r for r in read_results(out).runs if (r.backbone, r.method) not in mine] if out.exists() else []
    write_results(out, kept + [c.row(dataset) for c in cells] + tests)


def markdown(out: Path) -> str:
    """The sweep file as tables: every cell's validation numbers per (backbone, init), the chosen one marked,
    then the chosen cells' test numbers."""
    runs = read_results(out).runs
    commands = list(dict.fromkeys(str(r.config.get("command", "")) for r in runs if r.config.get("command")))
    lines = [f"# Recipe sweep: {runs[0].dataset if runs else ''}", "", "```", *commands, "```", "",
             "Validation (full ranking), coordinate descent in the order " + ", ".join(RECIPE_AXES)
             + "; the chosen cell of each sweep is in bold.", "",
             "| backbone | init | step | loss | augment | dropout | lr | dim | max_len | valid NDCG@10 | valid Recall@10 "
             "| best epoch / run | s/epoch |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    valid = [r for r in runs if r.config.get("split") == "valid"]
    test = [r for r in runs if r.config.get("split") == "test" and r.protocol == "full"]
    chosen_dirs = {r.config.get("run_dir") for r in test}
    for sweep_key in dict.fromkeys((r.backbone, r.method) for r in valid):
        rows = [r for r in valid if (r.backbone, r.method) == sweep_key]
        best = max(rows, key=lambda r: r.metrics["ndcg@10"])
        for r in rows:
            c = r.config
            mark = "**" if r is best or c.get("run_dir") in chosen_dirs else ""
            cut = " (cut short)" if c.get("cut_short") else ""
            lines.append(f"| {r.backbone} | {r.method} | {c['sweep_step']} | {c['loss']} | {c['augment']} | "
                         f"{c['dropout']} | {c['lr']} | {c['dim']} | {c['max_len']} | "
                         f"{mark}{r.metrics['ndcg@10']:.4f}{mark} | {r.metrics['recall@10']:.4f} | "
                         f"{c['best_epoch']} / {c['epochs_run']}{cut} | {c.get('seconds_per_epoch')} |")
    if test:
        lines += ["", "Test (full ranking) of the chosen cells, read once per sweep:", "",
                  "| backbone | init | loss | augment | dropout | lr | dim | max_len | NDCG@10 | Recall@10 | MRR |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in test:
            c = r.config
            lines.append(f"| {r.backbone} | {r.method} | {c['loss']} | {c['augment']} | {c['dropout']} | {c['lr']} | "
                         f"{c['dim']} | {c['max_len']} | {r.metrics['ndcg@10']:.4f} | {r.metrics['recall@10']:.4f} | "
                         f"{r.metrics['mrr']:.4f} |")
    return "\n".join(lines) + "\n"
