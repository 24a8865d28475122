"""The one results schema: every evaluation and benchmark writes a JSON file of this shape under `results/`.

`{"commit", "machine", "created_at", "runs": [{"dataset", "method", "backbone", "loss", "protocol", "seed",
"metrics": {...}, "head": {...}, "tail": {...}, "wall_s", "config": {...}}]}`; speed benchmarks use the same
layout with their own metric names (`p50_ms`, `items_per_s`, ...).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from semrec.item_table import utc_now


class RunResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str | None = None
    method: str | None = None
    backbone: str | None = None
    loss: str | None = None
    protocol: str | None = None
    seed: int | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    head: dict[str, float] = Field(default_factory=dict)
    tail: dict[str, float] = Field(default_factory=dict)
    wall_s: float | None = None
    config: dict[str, Any] = Field(default_factory=dict)


class ResultsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    commit: str
    machine: dict[str, Any]
    created_at: str
    runs: list[RunResult]


def git_commit(cwd: str | Path | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        commit = out.stdout.strip() or "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        return commit + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    import psutil

    try:
        return round(psutil.virtual_memory().total / 2**30, 1)
    except (psutil.Error, OSError):
        return None


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        # other work on the machine inflates wall times: record how busy it was when the results were written
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }
    try:  # torch is a worker dependency; the ranker records results without it
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def write_results(path: str | Path, runs: list[RunResult], append: bool = False) -> Path:
    """Write (or, with `append`, extend) a results file. Returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    previous: list[RunResult] = []
    if append and path.exists():
        previous = ResultsFile.model_validate_json(path.read_text()).runs
    doc = ResultsFile(commit=git_commit(), machine=machine_info(), created_at=utc_now(), runs=previous + runs)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc.model_dump(mode="json"), indent=2) + "\n")
    tmp.replace(path)
    return path


def read_results(path: str | Path) -> ResultsFile:
    return ResultsFile.model_validate_json(Path(path).read_text())
