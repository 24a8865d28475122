"""`semrec bench said-gain`: stage 2 trained from every item-table snapshot of a SAID stage-1 run.

The SAID paper (Hu et al., WWW'24 companion, Figure 5) ties the sequential recommender's gain to how well the
frozen LM regenerates the items' captions from their embeddings (generation accuracy, section 3.3). With a
stage-1 run trained with `--snapshot-tables` (`semrec_worker.methods.said.snapshots`), each snapshot s of the
table initialises a recommender, and its gain over random init of the same backbone b and seed is

    gain(s, b, seed) = NDCG@10_valid(init = s) / NDCG@10_valid(init = random) - 1

plotted against the snapshot's generation word accuracy. The step-0 snapshot is the untrained start (each
caption's mean token embedding): whether the trained table beats it is what stage 1 adds.

Cell layout: RUNS_DIR/<backbone>/seed<S>/<random | step<N>>/ is a `semrec train seqrec --no-evaluate-test` run
directory (validation only: the test split is never read). A cell whose metrics.json exists is reused; a cell
with only a checkpoint resumes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from semrec.cli_builder import echo
from semrec.errors import UserError
from semrec.results import RunResult

from semrec_worker.data.dataset import SequenceDataset
from semrec_worker.experiments.config import SAIDGainConfig, command_line
from semrec_worker.experiments.grid import data_fields, training_fields
from semrec_worker.experiments.plots import plot_said_gain
from semrec_worker.experiments.recipe import Finished, finished_run
from semrec_worker.methods.said.snapshots import SNAPSHOTS, read_index, snapshot_name
from semrec_worker.training import SeqRecConfig, train_seqrec

REFERENCE = "random"
METRICS = ("ndcg@10", "recall@10")


@dataclass
class GainCell:
    backbone: str
    seed: int
    snapshot: dict | None  # the snapshot's index entry; None for the random-init reference
    path: Path
    done: Finished | None = None
    reused: bool = False

    @property
    def label(self) -> str:
        return REFERENCE if self.snapshot is None else snapshot_name(self.snapshot["phase"], self.snapshot["step"])


def snapshots(said_run: Path) -> list[dict]:
    """The stage-1 run's snapshots of its training phase, in step order."""
    entries = [e for e in read_index(said_run) if e["phase"] == "train"]
    if not entries:
        raise UserError(f"--said-run {said_run}: no table snapshots there (train it with `semrec train said "
                        f"--snapshot-tables`)")
    return sorted(entries, key=lambda e: e["step"])


def plan(config: SAIDGainConfig, runs_dir: Path) -> list[GainCell]:
    """Per backbone and seed: the random reference, then one cell per snapshot."""
    entries = snapshots(config.said_run)
    cells = []
    for backbone in config.backbones:
        for seed in config.seeds:
            for entry in [None, *entries]:
                cell = GainCell(backbone, seed, entry, Path())
                cell.path = runs_dir / backbone / f"seed{seed}" / cell.label
                cells.append(cell)
    return cells


def init_of(cell: GainCell, said_run: Path) -> str:
    return REFERENCE if cell.snapshot is None else str(Path(said_run) / SNAPSHOTS / cell.snapshot["path"])


def cell_config(cell: GainCell, config: SAIDGainConfig) -> SeqRecConfig:
    """The cell's `semrec train seqrec` job: the bench's data and training settings, validation only."""
    return SeqRecConfig(**data_fields(config), **training_fields(config), backbone=cell.backbone, seed=cell.seed,
                        loss=config.loss, init=init_of(cell, config.said_run), evaluate_test=False, out=cell.path,
                        resume=(cell.path / "checkpoint.pt").exists())


def run_cell(cell: GainCell, config: SAIDGainConfig, dataset: SequenceDataset) -> GainCell:
    cell.done = finished_run(cell.path)
    if cell.done is not None:
        cell.reused = True
        echo(f"{cell.backbone}/seed{cell.seed}/{cell.label}: reused (valid ndcg@10 {cell.done.valid['ndcg@10']:.4f})")
        return cell
    started = time.perf_counter()
    train_seqrec(cell_config(cell, config), dataset=dataset)
    cell.done = finished_run(cell.path)
    assert cell.done is not None, f"{cell.path}: training finished without metrics.json"
    echo(f"{cell.backbone}/seed{cell.seed}/{cell.label}: valid ndcg@10 {cell.done.valid['ndcg@10']:.4f} "
         f"@ epoch {cell.done.best_epoch} ({time.perf_counter() - started:.0f} s)")
    return cell


def run(config: SAIDGainConfig, dataset: SequenceDataset, runs_dir: Path, on_cell=lambda cells: None) -> list[GainCell]:
    """Train (or reuse) every cell of the plan; `on_cell` sees the finished cells after each one."""
    finished: list[GainCell] = []
    for cell in plan(config, runs_dir):
        finished.append(run_cell(cell, config, dataset))
        on_cell(finished)
    return finished


def rows(cells: list[GainCell], dataset: str, config: SAIDGainConfig) -> list[RunResult]:
    """One validation row per finished cell; a snapshot's row holds its gain over the reference of the same
    backbone and seed (when that one has finished)."""
    reference = {(c.backbone, c.seed): c.done.valid for c in cells if c.snapshot is None and c.done is not None}
    command = command_line("semrec bench said-gain", config)
    out = []
    for cell in cells:
        if cell.done is None:
            continue
        done, snap = cell.done, cell.snapshot or {}
        settings = {"split": "valid", "init": cell.label, "said_run": str(config.said_run),
                    "snapshot_step": snap.get("step"), "snapshot_epoch": snap.get("epoch"),
                    "items_seen": snap.get("items_seen"), "word_accuracy": snap.get("word_accuracy"),
                    "exact_match": snap.get("exact_match"), "best_epoch": done.best_epoch,
                    "epochs_run": done.epochs_run, "seconds_per_epoch": done.seconds_per_epoch,
                    "cut_short": done.cut_short, "run_dir": str(cell.path), "command": command}
        base = reference.get((cell.backbone, cell.seed))
        if cell.snapshot is not None and base is not None:
            for metric in METRICS:
                settings[f"gain_{metric}"] = round(done.valid[metric] / base[metric] - 1, 6)
        out.append(RunResult(dataset=dataset, method=REFERENCE if cell.snapshot is None else "said",
                             backbone=cell.backbone, loss=config.loss, protocol="full", seed=cell.seed,
                             metrics={m: done.valid[m] for m in METRICS if m in done.valid}, config=settings))
    return out


def curve(runs: list[RunResult], backbone: str) -> list[dict]:
    """A backbone's points of the figure: per snapshot (step order), its accuracy and the gains averaged over
    the seeds that have a reference."""
    by_step: dict[int, list[RunResult]] = defaultdict(list)
    for r in runs:
        if r.backbone == backbone and r.method == "said" and "gain_ndcg@10" in r.config:
            by_step[int(r.config["snapshot_step"])].append(r)
    points = []
    for step in sorted(by_step):
        group = by_step[step]
        first = group[0].config
        points.append({"step": step, "epoch": first["snapshot_epoch"], "word_accuracy": first["word_accuracy"],
                       "exact_match": first["exact_match"], "seeds": len(group),
                       **{m: float(np.mean([r.metrics[m] for r in group])) for m in METRICS},
                       **{f"gain_{m}": float(np.mean([r.config[f"gain_{m}"] for r in group])) for m in METRICS}})
    return points


def markdown(runs: list[RunResult]) -> str:
    """The results as one table: the random reference, then every snapshot with its gains (seed means)."""
    lines = ["| backbone | init | step | epoch | word acc | exact | seeds | valid NDCG@10 | valid Recall@10 "
             "| NDCG@10 vs random | Recall@10 vs random |", "|---" * 11 + "|"]
    for backbone in dict.fromkeys(r.backbone for r in runs):
        ref = [r for r in runs if r.backbone == backbone and r.method == REFERENCE]
        if ref:
            lines.append(f"| {backbone} | random | | | | | {len(ref)} | "
                         f"{np.mean([r.metrics['ndcg@10'] for r in ref]):.4f} | "
                         f"{np.mean([r.metrics['recall@10'] for r in ref]):.4f} | | |")
        for p in curve(runs, backbone):
            lines.append(f"| {backbone} | said step {p['step']} | {p['step']} | {p['epoch']} | {p['word_accuracy']:.3f} | "
                         f"{p['exact_match']:.3f} | {p['seeds']} | {p['ndcg@10']:.4f} | {p['recall@10']:.4f} | "
                         f"{p['gain_ndcg@10'] * 100:+.1f}% | {p['gain_recall@10'] * 100:+.1f}% |")
    return "\n".join(lines)


def figure(runs: list[RunResult], path: Path, dataset: str) -> Path:
    """The paper's Figure 5 from the results rows (docs/images/said-gain-<dataset>.png)."""
    backbones = dict.fromkeys(r.backbone for r in runs if r.backbone)
    return plot_said_gain({b: curve(runs, b) for b in backbones}, path, dataset)
