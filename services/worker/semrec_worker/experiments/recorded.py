"""Cells taken from an earlier results file of the grid (`--recorded`), for run directories that are gone.

A grid's results JSON holds every cell's runs (seed set) and, per (method, backbone, protocol), an aggregate row
whose config keeps the mean NDCG@10 / Recall@10 per item-popularity group. That is enough to report a cell again
without its run directory: its table rows exactly, and its share of the popularity-group figure when every seed
of that aggregate is recorded (a mean over k seeds counts as k identical seeds).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from semrec.errors import UserError
from semrec.results import RunResult, read_results


@dataclass
class Recorded:
    path: Path
    runs: list[RunResult]
    aggregates: list[RunResult]

    def cell_runs(self, method: str, backbone: str | None, seed: int | None, loss: str | None) -> list[RunResult]:
        """The recorded runs of one cell (backbone cells must also match the grid's loss)."""
        return [r for r in self.runs if r.method == method and r.backbone == backbone and r.seed == seed
                and (backbone is None or r.loss == loss)]

    def popularity_groups(self, method: str, backbone: str | None, protocol: str) -> tuple[list[int], dict] | None:
        """(seeds, per-group means) of a recorded aggregate that was computed from every one of its seeds."""
        for row in self.aggregates:
            if (row.method, row.backbone, row.protocol) != (method, backbone, protocol):
                continue
            groups = row.config.get("popularity_groups")
            seeds = list(row.config.get("seeds", []))
            if groups and groups.get("seeds_with_ranks") == [float(len(seeds))]:
                return seeds, groups
        return None


def load_recorded(path: Path, dataset_name: str) -> Recorded:
    if not path.exists():
        raise UserError(f"--recorded {path}: no such file")
    try:
        runs = read_results(path).runs
    except (OSError, ValueError) as exc:
        raise UserError(f"--recorded {path}: not a results file ({exc})") from exc
    other = sorted({str(r.dataset) for r in runs if r.dataset != dataset_name})
    if other:
        raise UserError(f"--recorded {path}: holds results of {', '.join(other)}, not only {dataset_name}")
    aggregates = [r for r in runs if r.config.get("aggregate")]
    return Recorded(path, [r for r in runs if not r.config.get("aggregate")], aggregates)
