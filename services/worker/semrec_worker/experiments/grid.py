"""The quality grid: which cells exist, which are reused, how the others are trained, what each produced.

Cell layout (also what a cell run by hand must follow to be collected)::

    RUNS_DIR/<method>/<backbone>/seed<S>/   a run directory of `semrec train seqrec` (random, lh, llm2x, said,
                                            llm2bert4rec: `--init TABLE`), `semrec train llmemb-rat` (llmemb) or
                                            `semrec train tslrec` (tslrec): config.json, metrics.json,
                                            results.json, test_ranks.npz
    RUNS_DIR/<method>+<mode>/<backbone>/seed<S>/   the same method's table in another item layer (`--item-layers`,
                                            experiments/modes.py): `semrec train seqrec --init TABLE
                                            --item-layer frozen|dual [--fusion F]` (llmemb too: its SCFT table)
    RUNS_DIR/popularity/, RUNS_DIR/llmseqsim/   one cell each (no backbone, no seed): config.json, results.json
    RUNS_DIR/<method>/table/                 a table built by the grid when `--tables` gave none

A cell whose results.json exists and whose config.json matches the grid (backbone, seed, loss, history
bias, item layer and fusion, and the method its results are reported under) is reused, never re-run; a cell
that left a checkpoint but no results is resumed; a cell that matches nothing is reported as missing with the
reason, never overwritten.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semrec.cli_builder import echo, invocation_flags
from semrec.config import JobConfig, read_flat_config
from semrec.errors import UserError
from semrec.item_table import ItemTable
from semrec.results import RunResult, read_results, write_results

from semrec_worker.data.dataset import DataConfig
from semrec_worker.evaluation.jobs import PROTOCOLS, TEST_RANKS, EvalJobConfig, evaluate_runs
from semrec_worker.experiments.config import QualityConfig
from semrec_worker.experiments.modes import INIT, cell_name, layer_settings, mode_of, modes_of
from semrec_worker.experiments.recorded import Recorded
from semrec_worker.export.onnx import load_run_encoder  # torch only when a cell is re-evaluated
from semrec_worker.methods import registry
from semrec_worker.methods.registry import CellInputs
from semrec_worker.training.config import TrainingOverrides
from semrec_worker.training.recommender import SeqRecRecommender

RESULTS = "results.json"
CONFIG = "config.json"
CHECKPOINT = "checkpoint.pt"
LOG = "train.log"
REEVALUATED = "grid-eval.json"  # protocols a cell's own run did not evaluate, added by the grid from model.pt
GRID_RANKS = "grid-test-ranks.npz"  # per-case test ranks from that re-evaluation
TABLE_FILE = "item_table.npz"


@dataclass
class Cell:
    method: str
    backbone: str | None
    seed: int | None
    path: Path
    requested: bool = True  # False: only a prerequisite (the SASRec that LLMEmb / TSLRec build on)
    mode: str = INIT  # its item layer (experiments/modes.py)
    status: str = "pending"  # reused | trained | recorded | failed | mismatch | missing | skipped
    reason: str = ""
    runs: list[RunResult] = field(default_factory=list)

    @property
    def name(self) -> str:
        """What its results rows and aggregates are reported under: the method, `<method>+<mode>` in another
        item layer than init."""
        return cell_name(self.method, self.mode)

    @property
    def label(self) -> str:
        return self.name if self.backbone is None else f"{self.name}/{self.backbone}/seed{self.seed}"

    @property
    def ok(self) -> bool:
        return self.status in ("reused", "trained", "recorded")

    def cut_short(self) -> bool:
        return any(r.config.get("cut_short") for r in self.runs)


def cell_path(runs_dir: Path, method: str, backbone: str | None = None, seed: int | None = None,
              mode: str = INIT) -> Path:
    if method in registry.without_backbone():
        return runs_dir / method
    return runs_dir / cell_name(method, mode) / str(backbone) / f"seed{seed}"


def default_runs_dir(dataset_name: str) -> Path:
    return Path("runs") / f"quality-{dataset_name}"


def plan(config: QualityConfig, runs_dir: Path) -> list[Cell]:
    """Every cell, prerequisites first (random SASRec cells before the LLMEmb / TSLRec cells that use them);
    a method with a table has its cells in each of `--item-layers` (method, then mode, backbone, seed)."""
    cells: list[Cell] = []
    order = registry.names()
    native = [m for m in config.methods if INIT in modes_of(m, config.item_layers)]  # its own stage 2 runs
    needs_sasrec = any(registry.get(m).needs_sasrec for m in native) and "sasrec" not in config.table_paths()
    for method in config.methods:
        if not registry.get(method).has_backbone:
            cells.append(Cell(method, None, None, cell_path(runs_dir, method)))
    with_backbone = {m for m in config.methods if registry.get(m).has_backbone} | ({"random"} if needs_sasrec else set())
    for method in sorted(with_backbone, key=lambda m: (m != "random", order.index(m))):
        backbones = list(config.backbones) if method in config.methods else []
        if method == "random" and needs_sasrec and "sasrec" not in backbones:
            backbones.append("sasrec")
        modes = modes_of(method, config.item_layers) if method in config.methods else [INIT]
        for mode in modes:
            for backbone in backbones:
                for seed in config.seeds:
                    requested = method in config.methods and backbone in config.backbones
                    path = cell_path(runs_dir, method, backbone, seed, mode)
                    cells.append(Cell(method, backbone, seed, path, requested, mode=mode))
    return cells


def saved_config(path: Path) -> dict[str, Any]:
    return read_flat_config(path / CONFIG)  # by leaf name, nested or flat (earlier versions)


def check_existing(cell: Cell, config: QualityConfig) -> tuple[list[RunResult] | None, str]:
    """(its results, "") when the cell can be reused; (None, why not) otherwise."""
    if not (cell.path / RESULTS).exists():
        return None, "no results.json"
    try:
        runs = read_results(cell.path / RESULTS).runs
    except (OSError, ValueError) as exc:
        return None, f"unreadable results.json ({exc})"
    if not runs:
        return None, "results.json holds no runs"
    reported = {str(r.method) for r in runs}
    expected_ok = (lambda m: m.startswith("llmseqsim")) if cell.method == "llmseqsim" else (lambda m: m == cell.method)
    if not all(expected_ok(m) for m in reported):
        return None, f"config mismatch: results are for method {', '.join(sorted(reported))}, not {cell.method}"
    if cell.backbone is not None:
        try:
            saved = saved_config(cell.path)
        except (OSError, ValueError) as exc:
            return None, f"unreadable config.json ({exc})"
        wanted = {"backbone": cell.backbone, "seed": cell.seed, "loss": config.loss,
                  "history_bias": config.history_bias or "none", "item_layer": cell.mode}
        saved.setdefault("history_bias", "none")  # runs of earlier versions have none
        saved["item_layer"] = mode_of(saved.get("item_layer"), saved.get("fusion"))  # none recorded: init
        wrong = [f"{k}={saved.get(k)!r} (grid: {v!r})" for k, v in wanted.items() if saved.get(k) != v]
        if wrong:
            return None, "config mismatch: " + ", ".join(wrong)
    return runs, ""


# ---------------------------------------------------------------------------------------------- running


def data_fields(config: DataConfig) -> dict[str, Any]:
    """The dataset settings a benchmark passes on to every job it runs."""
    return {k: getattr(config, k) for k in ("data", "format", "kcore", "history_cap", "drop_unknown_items")}


def _eval_fields(config: QualityConfig) -> dict[str, Any]:
    return {k: getattr(config, k) for k in ("protocols", "exclude_history", "eval_seed")}


def training_fields(config: TrainingOverrides) -> dict[str, Any]:
    """The `semrec train seqrec` overrides a benchmark gives (those not None) and its per-cell time budget."""
    values = {k: getattr(config, k) for k in TrainingOverrides.model_fields if getattr(config, k) is not None}
    if getattr(config, "max_train_minutes", None) is not None:
        values["max_train_minutes"] = config.max_train_minutes
    return values


def _run_job(command: str, job: JobConfig, out: Path, config: QualityConfig) -> None:
    """`semrec train <command>` on `job`: in its own process (log in OUT/train.log) or in this one."""
    out.mkdir(parents=True, exist_ok=True)
    if not config.isolate:
        registry.train_commands()[command](job)
        return
    job_file = out / "grid-job.json"
    job.save(job_file)
    argv = [sys.executable, "-m", "semrec.cli", "train", command, "--config", str(job_file), *invocation_flags(job)]
    with (out / LOG).open("a") as log:
        log.write(f"$ {' '.join(argv)}\n")
        log.flush()
        done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TQDM_MININTERVAL": "10"})
    if done.returncode != 0:
        tail = (out / LOG).read_text().strip().splitlines()[-1:] or ["(empty log)"]
        raise UserError(f"`semrec train {command}` exited {done.returncode}: {tail[0][:300]} (log {out / LOG})")


def seqrec_on_table(method: str, config: QualityConfig) -> bool:
    """Whether some cell of the method trains `semrec train seqrec --init <its table>`: its results are then
    reported under the table's `metadata.method`, which must be the method's own name (check_existing)."""
    spec = registry.get(method)
    if spec.table is None or method not in config.methods:
        return False
    return spec.stage2 is registry.SEQREC or any(m != INIT for m in modes_of(method, config.item_layers))


def check_tables(config: QualityConfig) -> None:
    """The `--tables` checks that need no data, before any cell trains (exit 2): a table whose seqrec cells
    would report under another method (`metadata.method`, e.g. an LLM2X table given as llm2bert4rec) is
    refused now rather than after its cells have trained."""
    for method, path in config.table_paths().items():
        if method not in registry.SPECS or not seqrec_on_table(method, config):
            continue
        built_by = ItemTable.load_metadata(path).get("method", "table")
        if built_by != method:
            raise UserError(f"--tables {method}={path}: a table built by {built_by!r} (its metadata.method), not "
                            f"{method!r}: its cells would be reported as {built_by} and refused after training; "
                            f"pass a table made by `semrec train {method}`")


def table_for(method: str, config: QualityConfig, runs_dir: Path) -> Path:
    """The method's input table: `--tables`, or one built (once) under RUNS_DIR/<method>/table."""
    given = config.table_paths().get(method)
    if given is not None:
        if not given.exists():
            raise UserError(f"--tables {method}={given}: no such file or run directory")
        return given
    out = runs_dir / method / "table"
    if (out / TABLE_FILE).exists():
        return out
    if config.report_only:
        raise UserError(f"no {method} table (--report-only builds none; pass --tables {method}=PATH)")
    build = registry.get(method).table
    if build is None:
        raise UserError(f"{method} has no table to build")
    job = build.config(**data_fields(config), **build.grid_settings(config), out=out)
    echo(f"building the {method} table in {out}")
    _run_job(method, job, out, config)
    if not (out / TABLE_FILE).exists():
        raise UserError(f"the {method} build finished without {out / TABLE_FILE}")
    return out


def pretrained_sasrec(seed: int, config: QualityConfig, runs_dir: Path) -> Path:
    given = config.table_paths().get("sasrec")
    if given is not None:
        return given
    path = cell_path(runs_dir, "random", "sasrec", seed)
    if not (path / TABLE_FILE).exists():
        raise UserError(f"needs the pretrained SASRec {path} (its random/sasrec/seed{seed} cell failed or is absent)")
    return path


def backbone_job(cell: Cell, config: QualityConfig, runs_dir: Path) -> tuple[str, JobConfig]:
    """(`semrec train` command, its job) of a backbone cell: the grid's data, evaluation and training settings
    plus what the method's registry entry adds (its table, the pretrained SASRec, ...). A cell in another item
    layer than init is a seqrec run on the method's table in that mode (experiments/modes.py)."""
    spec = registry.get(cell.method)
    assert spec.stage2 is not None
    settings = {**data_fields(config), **_eval_fields(config), **training_fields(config), "backbone": cell.backbone,
                "seed": cell.seed, "loss": config.loss, "out": cell.path,
                "resume": (cell.path / CHECKPOINT).exists()}
    inputs = CellInputs(
        backbone=cell.backbone,
        seed=int(cell.seed or 0),
        resume=settings["resume"],
        grid=config,
        table=lambda: table_for(cell.method, config, runs_dir),
        sasrec=lambda seed: pretrained_sasrec(seed, config, runs_dir),
        same_method_cells=[c.path for c in plan(config, runs_dir) if c.name == cell.name],
    )
    if cell.mode == INIT:
        return spec.stage2.command, spec.stage2.config(**settings, **spec.cell(inputs))
    # the method's own seqrec settings (LLM2BERT4Rec's backbone check), or its table for another stage 2 (LLMEmb)
    own = spec.cell(inputs) if spec.stage2 is registry.SEQREC else {"init": str(inputs.table())}
    return registry.SEQREC.command, registry.SEQREC.config(**settings, **own, **layer_settings(cell.mode))


def run_reference_cell(cell: Cell, config: QualityConfig, dataset) -> None:
    """A method without a backbone (popularity, LLMSeqSim): no training, evaluated in this process by its
    registry entry's `reference`."""
    reference = registry.get(cell.method).reference
    if reference is None:
        raise UserError(f"{cell.method} has neither a backbone nor a reference evaluation")
    eval_config = EvalJobConfig(**data_fields(config), **_eval_fields(config))
    cell.path.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model, name, extra = reference.load()(dataset, config)
    runs = evaluate_runs(model, dataset, eval_config, name, train_s=time.perf_counter() - start,
                         extra_config=extra, ranks_path=cell.path / TEST_RANKS)
    eval_config.save(cell.path)
    write_results(cell.path / RESULTS, runs)


def complete_cell(cell: Cell, config: QualityConfig, dataset) -> None:
    """Evaluate a finished backbone cell's saved best model under the protocols its run lacked, and save
    per-case test ranks when it has none (cells trained by hand before test_ranks.npz existed).

    The cell's own results.json is never changed: added protocols go to RUNS_DIR/.../grid-eval.json. The
    protocols the run did evaluate must come out the same (else nothing is added and the cell says why).
    """
    present = {r.protocol for r in cell.runs}
    if (cell.path / REEVALUATED).exists():
        cell.runs += [r for r in read_results(cell.path / REEVALUATED).runs if r.protocol not in present]
        present = {r.protocol for r in cell.runs}
    lacking = [p for p in config.protocols if p not in present]
    has_ranks = (cell.path / TEST_RANKS).exists() or (cell.path / GRID_RANKS).exists()
    if not lacking and has_ranks:
        return

    try:
        encoder, run_config, _, metrics = load_run_encoder(cell.path)
    except (UserError, OSError, RuntimeError, ValueError) as exc:
        cell.reason = f"could not re-evaluate its model: {str(exc)[:200]}"
        return
    protocols = sorted(set(config.protocols) | present, key=PROTOCOLS.index)
    eval_config = EvalJobConfig(**data_fields(config), protocols=protocols, exclude_history=run_config.exclude_history,
                                eval_seed=run_config.eval_seed)
    echo(f"{cell.label}: re-evaluating its best model ({', '.join(protocols)}) for "
         f"{'protocols ' + ', '.join(lacking) if lacking else 'per-case ranks'}")
    model = SeqRecRecommender(encoder, metrics["model"]["similarity"])
    ranks_path = cell.path / GRID_RANKS
    fresh = evaluate_runs(model, dataset, eval_config, cell.method, backbone=cell.backbone, loss=run_config.loss,
                          seed=run_config.seed, extra_config={"re_evaluated_by": "semrec bench quality"},
                          ranks_path=ranks_path)
    for old in cell.runs:
        new = next(r for r in fresh if r.protocol == old.protocol)
        if any(abs(new.metrics[k] - v) > 1e-4 for k, v in old.metrics.items() if k in new.metrics):
            ranks_path.unlink()
            cell.reason = f"re-evaluating its model.pt did not reproduce its {old.protocol} results; not used"
            echo(f"{cell.label}: {cell.reason}")
            return
    added = [r for r in fresh if r.protocol in lacking]
    if added:
        write_results(cell.path / REEVALUATED, added)
        cell.runs += added


def run_grid(config: QualityConfig, dataset, runs_dir: Path, recorded: Recorded | None = None) -> list[Cell]:
    """Reuse, resume or train every cell; a failure is recorded on its cell and the grid goes on (a bad
    `--tables` entry stops it before any cell)."""
    check_tables(config)
    cells = plan(config, runs_dir)
    echo(f"quality grid: {len(cells)} cells under {runs_dir}")
    for i, cell in enumerate(cells, 1):
        runs, why = check_existing(cell, config)
        if runs is not None:
            cell.status, cell.runs = "reused", runs
            echo(f"[{i}/{len(cells)}] {cell.label}: reused")
            continue
        if why == "no results.json" and recorded is not None:
            kept = recorded.cell_runs(cell.name, cell.backbone, cell.seed, config.loss)
            if kept:
                source = kept[0].config["recorded_from"]
                cell.status, cell.reason, cell.runs = "recorded", f"from {source}", kept
                echo(f"[{i}/{len(cells)}] {cell.label}: recorded in {source} (no run directory)")
                continue
        if why.startswith(("config mismatch", "unreadable")):
            cell.status, cell.reason = "mismatch", why
            echo(f"[{i}/{len(cells)}] {cell.label}: NOT reused, {why} (the cell is left as it is)")
            continue
        if config.report_only:
            cell.status, cell.reason = "missing", why
            continue
        started = time.perf_counter()
        echo(f"[{i}/{len(cells)}] {cell.label}: {'resuming' if (cell.path / CHECKPOINT).exists() else 'training'}")
        try:
            stage2 = registry.get(cell.method).stage2
            if stage2 is None:
                run_reference_cell(cell, config, dataset)
            else:
                _run_job(*backbone_job(cell, config, runs_dir), cell.path, config)
            runs, why = check_existing(cell, config)
            if runs is None:
                raise UserError(f"finished but {why}")
            cell.status, cell.runs = "trained", runs
            echo(f"[{i}/{len(cells)}] {cell.label}: done in {time.perf_counter() - started:.0f} s"
                 f"{' (cut short by the budget)' if cell.cut_short() else ''}")
        except Exception as exc:  # one failed cell must not stop the grid: it is reported
            message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            cell.status, cell.reason = "failed", message
            echo(f"[{i}/{len(cells)}] {cell.label}: FAILED: {message}")
            if not isinstance(exc, UserError):
                echo(traceback.format_exc(limit=4))
    for cell in cells:
        if cell.status in ("reused", "trained") and cell.requested and cell.backbone is not None:
            complete_cell(cell, config, dataset)
    return cells
