"""Stage-2 summary: seqrec runs initialised from a SAID table vs random, frozen vs fine-tuned table.

`python -m semrec_worker.methods.said.stage2 OUT.json RUN_DIR...` collects each RUN_DIR/results.json (the results
schema written by `semrec train seqrec`), writes them into one results file and prints a markdown table of
mean +- std over seeds and the relative change against random init of the same backbone.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from semrec.results import RunResult, read_results, write_results

METRICS = ("ndcg@10", "recall@10", "mrr")


def init_label(run: RunResult) -> str:
    """'random', or '<table run dir> frozen|fine-tuned' (e.g. 'said-scientific fine-tuned')."""
    init = str(run.config.get("init", "random"))
    if init == "random":
        return "random"
    path = Path(init)
    source = (path.parent.name if path.suffix == ".npz" else path.name) or path.stem
    return f"{source} {'frozen' if run.config.get('freeze_items') else 'fine-tuned'}"


def summarise(runs: list[RunResult]) -> str:
    groups: dict[tuple[str, str], list[RunResult]] = defaultdict(list)
    for run in runs:
        if run.protocol == "full":
            groups[(run.backbone or "?", init_label(run))].append(run)
    lines = ["| backbone | init | seeds | " + " | ".join(METRICS) + " | NDCG@10 vs random |", "|---" * (4 + len(METRICS)) + "|"]
    for (backbone, label), group in sorted(groups.items()):
        cells = []
        for metric in METRICS:
            values = np.array([r.metrics.get(metric, np.nan) for r in group])
            cells.append(f"{values.mean():.4f} +- {values.std():.4f}")
        base = groups.get((backbone, "random"))
        change = ""
        if base and label != "random":
            ref = np.mean([r.metrics["ndcg@10"] for r in base])
            change = f"{(np.mean([r.metrics['ndcg@10'] for r in group]) / ref - 1) * 100:+.1f}%"
        seeds = ",".join(str(r.seed) for r in sorted(group, key=lambda r: r.seed or 0))
        lines.append(f"| {backbone} | {label} | {seeds} | " + " | ".join(cells) + f" | {change} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    out, run_dirs = Path(argv[0]), [Path(a) for a in argv[1:]]
    runs = [run for d in run_dirs if (d / "results.json").exists() for run in read_results(d / "results.json").runs]
    write_results(out, runs)
    print(summarise(runs))


if __name__ == "__main__":
    main(sys.argv[1:])
