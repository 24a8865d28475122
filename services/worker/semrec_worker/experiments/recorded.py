"""Cells taken from earlier results files (`--recorded`), for run directories that are gone.

A grid's results JSON holds every cell's runs (seed set) and, per (method, backbone, protocol), an aggregate row
whose config keeps the mean NDCG@10 / Recall@10 per item-popularity group. That is enough to report a cell again
without its run directory: its table rows exactly, and its share of the popularity-group figure when every seed
of that aggregate is recorded (a mean over k seeds counts as k identical seeds).

The results of `semrec eval sknn|vsknn|cooc|popularity|llmseqsim` can be recorded too: their test-split runs report the
method's cell (runs of `--split valid`, the settings sweep, are never used), and the per-group breakdown those
commands keep in each run's config feeds the figure. Several files can be given; the first that holds a cell
reports it.

A cell in another item layer than init (`--item-layers`) is held under its cell name, `<method>+<mode>`
(experiments/modes.py), in its runs and its aggregate rows alike, so it is matched by that name and a file
rebuilds every mode's rows; an init cell and the files of earlier versions use the plain method name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from semrec.errors import UserError
from semrec.results import RunResult, read_results

SOURCE = "recorded_from"  # the config key naming the file a recorded run came from


def reports(run_method: str, method: str) -> bool:
    """Whether a run under `run_method` reports the grid's `method` (LLMSeqSim's runs name their variant)."""
    return run_method == method or (method == "llmseqsim" and run_method.startswith("llmseqsim-"))


@dataclass
class Recorded:
    paths: list[Path]
    runs: list[RunResult]
    aggregates: list[RunResult]

    def cell_runs(self, method: str, backbone: str | None, seed: int | None, loss: str | None) -> list[RunResult]:
        """The recorded test-split runs of one cell (`method`: its cell name; backbone cells must also match the
        grid's loss), all from the first file that holds the cell."""
        found = [r for r in self.runs if reports(str(r.method), method) and r.backbone == backbone and r.seed == seed
                 and (backbone is None or r.loss == loss) and r.config.get("split", "test") == "test"]
        return [r for r in found if r.config[SOURCE] == found[0].config[SOURCE]] if found else []

    def popularity_groups(self, method: str, backbone: str | None, protocol: str) -> tuple[list[int | None], dict] | None:
        """(seeds, per-group means) of a recorded aggregate that was computed from every one of its seeds, or of
        a method without a backbone whose run kept its own breakdown."""
        for row in self.aggregates:
            if (row.method, row.backbone, row.protocol) != (method, backbone, protocol):
                continue
            groups = row.config.get("popularity_groups")
            seeds = list(row.config.get("seeds", []))
            if groups and groups.get("seeds_with_ranks") == [float(len(seeds))]:
                return seeds, groups
        if backbone is None:
            for run in self.cell_runs(method, None, None, None):
                if run.protocol == protocol and run.config.get("popularity_groups"):
                    return [None], run.config["popularity_groups"]
        return None


def load_recorded(paths: list[Path], dataset_name: str) -> Recorded:
    runs: list[RunResult] = []
    for path in paths:
        if not path.exists():
            raise UserError(f"--recorded {path}: no such file")
        try:
            found = read_results(path).runs
        except (OSError, ValueError) as exc:
            raise UserError(f"--recorded {path}: not a results file ({exc})") from exc
        other = sorted({str(r.dataset) for r in found if r.dataset != dataset_name})
        if other:
            raise UserError(f"--recorded {path}: holds results of {', '.join(other)}, not only {dataset_name}")
        runs += [r.model_copy(update={"config": {**r.config, SOURCE: str(path)}}) for r in found]
    aggregates = [r for r in runs if r.config.get("aggregate")]
    return Recorded(list(paths), [r for r in runs if not r.config.get("aggregate")], aggregates)
