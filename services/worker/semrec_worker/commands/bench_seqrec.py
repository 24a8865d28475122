"""`semrec bench seqrec` (quality grid) and `semrec bench seqrec-speed` (seconds per epoch, peak memory).

Each grid point runs as its own `semrec train seqrec` process (so its peak memory is its own) and appends its
test RunResults to the results JSON as soon as it finishes, so a partial grid survives an interruption; a
rerun skips the points already in the file and resumes runs that left a checkpoint.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import get_args

from pydantic import Field
from semrec.cli_builder import CommandGroups, config_command, echo
from semrec.errors import UserError
from semrec.results import RunResult, write_results

from semrec_worker.core.names import BackboneName, LossName
from semrec_worker.training.config import TrainingOverrides
from semrec_worker.training.item_layer import Fusion, ItemLayerMode


class BenchSeqRecConfig(TrainingOverrides):
    data: str = Field(..., description="dataset folder")
    backbones: list[str] = Field(["gru4rec", "sasrec"], description="backbones (gru4rec, sasrec, bert4rec)")
    losses: list[str] = Field(["said_cosine", "full_ce"], description="losses (said_cosine, full_ce, ...)")
    seeds: list[int] = Field([0, 1, 2], description="seeds")
    init: str = Field("random", description="'random' or an ItemTable for every run")
    runs_dir: Path = Field(Path("runs/bench-seqrec"), description="where the run directories go")
    results: Path | None = Field(None, description="results JSON (default results/seqrec-<dataset>.json)")
    parallel: int = Field(1, ge=1, description="training processes at once")
    retries: int = Field(2, ge=0, description="resume a run killed by a signal this many times")


def _check(values: list[str], allowed: type, what: str) -> None:
    bad = [v for v in values if v not in get_args(allowed)]
    if bad:
        raise UserError(f"unknown {what} {', '.join(bad)} (choose from {', '.join(get_args(allowed))})")


def _semrec() -> list[str]:
    return [sys.executable, "-m", "semrec.cli"]


def _done(results: Path) -> set[tuple]:
    if not results.exists():
        return set()
    runs = json.loads(results.read_text())["runs"]
    return {(r["backbone"], r["loss"], r["seed"], r["method"]) for r in runs}


def bench_seqrec(config: BenchSeqRecConfig) -> Path:
    _check(config.backbones, BackboneName, "backbone")
    _check(config.losses, LossName, "loss")
    dataset = Path(config.data).name
    results = config.results or Path("results") / f"seqrec-{dataset}.json"
    method = "random" if config.init == "random" else None
    pending: list[tuple[str, str, int, Path]] = []
    done = _done(results)
    for backbone in config.backbones:
        for loss in config.losses:
            for seed in config.seeds:
                key = (backbone, loss, seed, method)
                run_dir = config.runs_dir / dataset / f"{backbone}-{loss}-{config.init if method is None else method}-s{seed}"
                if method is not None and key in done:
                    echo(f"skip {run_dir.name}: already in {results}")
                    continue
                pending.append((backbone, loss, seed, run_dir))
    config.runs_dir.mkdir(parents=True, exist_ok=True)
    config.save(config.runs_dir / f"bench-{dataset}.json")
    running: list[tuple[subprocess.Popen, Path, float]] = []
    grid, attempts = list(pending), {}
    while pending or running:
        while pending and len(running) < config.parallel:
            backbone, loss, seed, run_dir = pending.pop(0)
            command = _semrec() + ["train", "seqrec", "--data", config.data, "--backbone", backbone, "--loss", loss,
                                   "--seed", str(seed), "--init", config.init, "--out", str(run_dir),
                                   "--results", str(results), *config.flags()]
            if (run_dir / "checkpoint.pt").exists():
                command.append("--resume")
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            log = (run_dir.parent / f"{run_dir.name}.log").open("a")
            echo(f"start {run_dir.name} (log {log.name})")
            running.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), run_dir, time.time()))
        time.sleep(2)
        for entry in list(running):
            process, run_dir, started = entry
            if process.poll() is not None:
                running.remove(entry)
                status = "done" if process.returncode == 0 else f"FAILED (exit {process.returncode})"
                echo(f"{status} {run_dir.name} in {time.time() - started:.0f} s")
                retries = attempts.get(run_dir, 0)
                if process.returncode < 0 and retries < config.retries:  # killed by a signal: resume it
                    attempts[run_dir] = retries + 1
                    pending.insert(0, next(p for p in grid if p[3] == run_dir))
    print_summary(results)
    return results


def print_summary(results: Path) -> None:
    if not results.exists():
        return
    runs = json.loads(results.read_text())["runs"]
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["method"], r["backbone"], r["loss"], r["protocol"]), []).append(r)
    echo(f"{'dataset':24} {'method':10} {'backbone':9} {'loss':12} {'n':>2}  ndcg@10          recall@10        mrr")
    for key, group in sorted(groups.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        cells = []
        for metric in ("ndcg@10", "recall@10", "mrr"):
            values = [g["metrics"][metric] for g in group]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.4f} ± {spread:.4f}")
        echo(f"{key[0]:24} {str(key[1]):10} {key[2]:9} {key[3]:12} {len(group):>2}  " + "  ".join(cells))


class BenchSeqRecSpeedConfig(TrainingOverrides):
    data: str = Field(..., description="dataset folder")
    backbones: list[str] = Field(["gru4rec", "sasrec", "bert4rec"], description="backbones")
    loss: LossName = Field("full_ce", description="loss")
    init: str = Field("random", description="'random' or an ItemTable (.npz or run dir; the frozen and dual item "
                      "layers need one)")
    item_layers: list[ItemLayerMode] = Field(["init"], description="item-layer modes to time (init, frozen, dual)")
    fusion: Fusion = Field("sum", description="dual: how the two views combine (sum, concat, gate)")
    runs_dir: Path = Field(Path("runs/bench-seqrec-speed"), description="where the run directories go")
    results: Path = Field(Path("results/seqrec-speed.json"), description="results JSON (appended)")


def bench_seqrec_speed(config: BenchSeqRecSpeedConfig) -> Path:
    _check(config.backbones, BackboneName, "backbone")
    if config.init == "random" and set(config.item_layers) - {"init"}:
        raise UserError("--item-layers frozen/dual need --init TABLE (an ItemTable .npz or run directory)")
    if config.init != "random" and not Path(config.init).exists():
        raise UserError(f"--init {config.init}: no such file or directory")

    if config.epochs is None:
        config.epochs = 2
    config.patience = config.epochs + 1
    dataset = Path(config.data).name
    for backbone, mode in ((b, m) for b in config.backbones for m in config.item_layers):
        label = backbone if config.item_layers == ["init"] else f"{backbone}/{mode}"
        run_dir = config.runs_dir / f"{dataset}-{backbone}-{mode}-{config.loss}-{int(time.time())}"
        layer = ["--item-layer", mode] + (["--fusion", config.fusion] if mode == "dual" else [])
        init = [] if config.init == "random" else ["--init", config.init]
        command = _semrec() + ["train", "seqrec", "--data", config.data, "--backbone", backbone, "--loss",
                               config.loss, *init, *layer, "--out", str(run_dir), *config.flags()]
        echo(f"{label}: {' '.join(command[3:])}")
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        if done.returncode != 0:
            raise UserError(f"{label} speed run failed: {done.stdout[-500:]}{done.stderr[-1000:]}")
        metrics = json.loads((run_dir / "metrics.json").read_text())
        epochs = metrics["epochs"]
        train_s = [e["train_s"] for e in epochs]
        numbers = {
            "s_per_epoch": round(statistics.mean(train_s), 2),
            "s_per_epoch_min": round(min(train_s), 2),
            "cpu_s_per_epoch": round(statistics.mean(e["train_cpu_s"] for e in epochs), 2),
            "targets_per_s": round(metrics["train_targets"] / statistics.mean(train_s), 1),
            "valid_eval_s": round(statistics.mean(e["valid_s"] for e in epochs), 2),
            "peak_rss_mib": metrics["peak_rss_mib"],
            "parameters": metrics["model"]["parameters"],
            "epochs": len(epochs),
        }
        echo(f"{label}: {numbers}")
        method = "random" if config.init == "random" else str(metrics.get("init", {}).get("method", "table"))
        run = RunResult(dataset=metrics["dataset"]["name"], method=method, backbone=backbone, loss=config.loss,
                        protocol="train-speed", metrics=numbers, wall_s=round(time.perf_counter() - started, 1),
                        config={**config.to_dict(), "item_layer": mode, "device": metrics["device"]})
        write_results(config.results, [run], append=True)
    echo(f"results appended to {config.results}")
    return config.results


def register(groups: CommandGroups) -> None:
    config_command(
        groups.bench,
        "seqrec",
        BenchSeqRecConfig,
        bench_seqrec,
        "Quality grid: backbones x losses x seeds of `semrec train seqrec`, results appended per run; prints "
        "mean ± std per setting.",
    )
    config_command(
        groups.bench,
        "seqrec-speed",
        BenchSeqRecSpeedConfig,
        bench_seqrec_speed,
        "Seconds per training epoch and peak memory (RSS) of each backbone and item-layer mode, one fresh "
        "process per run.",
    )
