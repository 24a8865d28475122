"""From the grid's cells to numbers: mean and std over seeds, the results JSON, and the markdown tables.

Table A follows the SAID paper's Table 2 (full ranking; NDCG@10, Recall@10, MRR per backbone; a row
"Improv." = the best LLM-initialised method over the best baseline). Table B follows the LLMEmb paper's
Table 1 (sampled-100 protocol; overall and tail-item NDCG@10 and HR@10). A cell that failed or is absent
is shown as "-" and listed below the tables; nothing is filled in.

Rows are cell names (experiments/modes.py): a method, or `<method>+<mode>` for its table in another item layer
than init (`--item-layers`), labelled "LLM2X (frozen)", "LLM2X (dual, sum)"; the results JSON rows carry the
same name as their `method`, so `--recorded` reads the modes back.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semrec.results import RunResult

from semrec_worker.evaluation.jobs import TEST_RANKS
from semrec_worker.evaluation.popularity import metrics_by_group, popularity_groups
from semrec_worker.experiments import modes
from semrec_worker.experiments.config import QualityConfig
from semrec_worker.experiments.grid import GRID_RANKS, Cell
from semrec_worker.experiments.recorded import Recorded
from semrec_worker.methods import registry

PARTS = ("metrics", "head", "tail")
GROUP_METRICS = ("ndcg@10", "recall@10")


@dataclass
class Aggregate:
    """Mean and sample std over seeds of one (method, backbone, protocol)."""

    method: str
    backbone: str | None
    protocol: str
    seeds: list[int | None]
    mean: dict[str, dict[str, float]]
    std: dict[str, dict[str, float]]
    cut_short_seeds: list[int | None] = field(default_factory=list)
    capped_seeds: list[int | None] = field(default_factory=list)
    popularity_groups: dict[str, list[float]] | None = None

    @property
    def n(self) -> int:
        return len(self.seeds)


def grid_runs(cells: list[Cell]) -> list[RunResult]:
    """The requested cells' RunResults, reported under the grid's cell name (the method, `<method>+<mode>` in
    another item layer; the run's own method name in config)."""
    runs = []
    for cell in cells:
        if not (cell.ok and cell.requested):
            continue
        for run in cell.runs:
            config = {**run.config, "cell": str(cell.path)}
            if run.method != cell.name:
                config["reported_method"] = run.method
            runs.append(run.model_copy(update={"method": cell.name, "config": config}))
    return runs


def at_epoch_cap(run: RunResult) -> bool:
    """Training ran every allowed epoch and its last was the best: it stopped still improving."""
    epochs = run.config.get("epochs")
    return bool(epochs) and run.config.get("best_epoch") == epochs == run.config.get("epochs_run")


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(runs: list[RunResult]) -> list[Aggregate]:
    groups: dict[tuple[str, str | None, str], list[RunResult]] = defaultdict(list)
    for run in runs:
        groups[(str(run.method), run.backbone, str(run.protocol))].append(run)
    out = []
    for (method, backbone, protocol), group in groups.items():
        mean: dict[str, dict[str, float]] = {}
        std: dict[str, dict[str, float]] = {}
        for part in PARTS:
            names = [n for n in getattr(group[0], part) if all(n in getattr(r, part) for r in group)]
            stats = {n: _mean_std([getattr(r, part)[n] for r in group]) for n in names}
            mean[part] = {n: round(m, 6) for n, (m, _) in stats.items()}
            std[part] = {n: round(s, 6) for n, (_, s) in stats.items()}
        out.append(Aggregate(method, backbone, protocol, [r.seed for r in group], mean, std,
                             [r.seed for r in group if r.config.get("cut_short")],
                             [r.seed for r in group if at_epoch_cap(r)]))
    return out


def add_popularity_groups(aggregates: list[Aggregate], cells: list[Cell], dataset, n_groups: int,
                          recorded: Recorded | None = None) -> None:
    """Mean over seeds of NDCG@10 (and Recall@10) per item-popularity group, from each cell's test_ranks.npz
    (recorded cells: from the recorded aggregate, when it covered exactly their seeds)."""
    import numpy as np

    item_groups = popularity_groups(dataset.item_counts("train"), n_groups)
    per_key: dict[tuple, list[list[dict[str, float]]]] = defaultdict(list)
    for cell in cells:
        if not (cell.ok and cell.requested):
            continue
        seen: set[str] = set()
        for path in (cell.path / TEST_RANKS, cell.path / GRID_RANKS):  # the run's own ranks first
            if not path.exists():
                continue
            saved = np.load(path)
            for protocol in [p for p in saved.files if p != "targets" and p not in seen]:
                seen.add(protocol)
                per_key[(cell.name, cell.backbone, protocol)].append(
                    metrics_by_group(saved[protocol], saved["targets"], item_groups, n_groups)
                )
    if recorded is not None:
        _add_recorded_groups(per_key, cells, recorded, n_groups)
    for agg in aggregates:
        seeds = per_key.get((agg.method, agg.backbone, agg.protocol))
        if seeds:
            agg.popularity_groups = group_means(seeds, n_groups)


def group_means(per_seed: list[list[dict[str, float]]], n_groups: int) -> dict[str, list[float]]:
    """Mean over seeds of each group's NDCG@10 and Recall@10 (`metrics_by_group` per seed), the cases per group
    and how many seeds had ranks: the `popularity_groups` entry of a results row's config."""
    out = {metric: [round(statistics.fmean(s[g].get(metric, 0.0) for s in per_seed), 6) for g in range(n_groups)]
           for metric in GROUP_METRICS}
    out["cases"] = [per_seed[0][g]["cases"] for g in range(n_groups)]
    out["seeds_with_ranks"] = [float(len(per_seed))]
    return out


def _add_recorded_groups(per_key: dict, cells: list[Cell], recorded: Recorded, n_groups: int) -> None:
    recorded_seeds: dict[tuple, set] = defaultdict(set)
    for cell in cells:
        if cell.status == "recorded" and cell.requested:
            for run in cell.runs:
                recorded_seeds[(cell.name, cell.backbone, run.protocol)].add(cell.seed)
    for (method, backbone, protocol), seeds in recorded_seeds.items():
        found = recorded.popularity_groups(method, backbone, protocol)
        if found is None or set(found[0]) != seeds or len(found[1]["cases"]) != n_groups:
            continue  # its groups cannot be separated from other seeds: left out (seeds_with_ranks says so)
        groups = found[1]
        per_seed = [{"ndcg@10": groups["ndcg@10"][g], "recall@10": groups["recall@10"][g], "cases": groups["cases"][g]}
                    for g in range(n_groups)]
        per_key[(method, backbone, protocol)] += [per_seed] * len(seeds)


def aggregate_rows(aggregates: list[Aggregate], dataset_name: str, loss: str) -> list[RunResult]:
    """The aggregates in the results schema: seed None, metrics/head/tail = means, config.std = the stds."""
    rows = []
    for agg in aggregates:
        config: dict[str, Any] = {"aggregate": "mean_std_over_seeds", "seeds": agg.seeds, "n": agg.n, "std": agg.std,
                                  "cut_short_seeds": agg.cut_short_seeds,
                                  "epoch_cap_seeds": agg.capped_seeds}
        if agg.popularity_groups is not None:
            config["popularity_groups"] = agg.popularity_groups
        rows.append(RunResult(dataset=dataset_name, method=agg.method, backbone=agg.backbone,
                              loss=None if agg.method in registry.without_backbone() else loss, protocol=agg.protocol, seed=None,
                              metrics=agg.mean["metrics"], head=agg.mean["head"], tail=agg.mean["tail"],
                              config=config))
    return rows


# ---------------------------------------------------------------------------------------------- markdown


def find(aggregates: list[Aggregate], method: str, backbone: str, protocol: str) -> Aggregate | None:
    wanted_backbone = None if method in registry.without_backbone() else backbone
    for agg in aggregates:
        if (agg.method, agg.backbone, agg.protocol) == (method, wanted_backbone, protocol):
            return agg
    return None


def _cell_text(agg: Aggregate | None, part: str, metric: str, n_seeds: int) -> str:
    if agg is None or metric not in agg.mean.get(part, {}):
        return "-"
    mean, std = agg.mean[part][metric], agg.std[part][metric]
    text = f"{mean:.4f}" if agg.n == 1 else f"{mean:.4f} ± {std:.4f}"
    expected = 1 if agg.method in registry.without_backbone() else n_seeds
    if agg.n < expected:
        text += f" (n={agg.n})"
    if agg.cut_short_seeds:
        text += " †"
    if agg.capped_seeds:
        text += " ‡"
    return text


def _improvement(aggregates: list[Aggregate], rows: list[str], backbone: str, protocol: str, part: str,
                 metric: str) -> str:
    """The best LLM-initialised row (any item layer) over the best baseline row, in one column."""
    def best(candidates: list[str]) -> tuple[str, float] | None:
        scored = []
        for name in [r for r in rows if modes.split(r)[0] in candidates]:
            agg = find(aggregates, name, backbone, protocol)
            if agg is not None and metric in agg.mean.get(part, {}):
                scored.append((agg.mean[part][metric], name))
        return (max(scored)[1], max(scored)[0]) if scored else None

    llm, base = best(registry.llm_initialised()), best(registry.baselines())
    if llm is None or base is None or base[1] <= 0:
        return "-"
    change = 100 * (llm[1] - base[1]) / base[1]
    return f"{change:+.1f}% ({modes.label(llm[0])} vs {modes.label(base[0])})"


def report_rows(config: QualityConfig) -> list[str]:
    """The cell names of the report's rows: methods in registry order, each in its item layers."""
    return modes.row_names(config.methods, config.item_layers)


def _table(aggregates: list[Aggregate], config: QualityConfig, protocol: str,
           columns: list[tuple[str, str, str]]) -> list[str]:
    """Rows = methods (each in its item layers), then Improv.; per backbone one column per (part, metric,
    header)."""
    rows = report_rows(config)
    header = ["method"] + [f"{b} {h}" for b in config.backbones for _, _, h in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in rows:
        row = [modes.label(name)]
        for backbone in config.backbones:
            agg_cells = [_cell_text(find(aggregates, name, backbone, protocol), part, metric, len(config.seeds))
                         for part, metric, _ in columns]
            row += agg_cells
        lines.append("| " + " | ".join(row) + " |")
    improv = ["Improv."]
    for backbone in config.backbones:
        improv += [_improvement(aggregates, rows, backbone, protocol, part, metric) for part, metric, _ in columns]
    lines.append("| " + " | ".join(improv) + " |")
    return lines


def said_table(aggregates: list[Aggregate], config: QualityConfig) -> list[str]:
    columns = [("metrics", "ndcg@10", "NDCG@10"), ("metrics", "recall@10", "Recall@10"), ("metrics", "mrr", "MRR")]
    return _table(aggregates, config, "full", columns)


def llmemb_table(aggregates: list[Aggregate], config: QualityConfig) -> list[str]:
    columns = [("metrics", "ndcg@10", "overall N@10"), ("metrics", "recall@10", "overall H@10"),
               ("tail", "ndcg@10", "tail N@10"), ("tail", "recall@10", "tail H@10")]
    return _table(aggregates, config, "sampled100", columns)


def popularity_group_table(aggregates: list[Aggregate], config: QualityConfig, protocol: str = "full",
                           metric: str = "ndcg@10") -> list[str]:
    """Rows = (method, backbone) with a per-group breakdown, columns = popularity groups (least popular first);
    the numbers of the popularity-group figure. Empty when no aggregate has groups."""
    shown = [a for name in report_rows(config) for a in aggregates
             if a.method == name and a.protocol == protocol and a.popularity_groups
             and (a.backbone is None or a.backbone in config.backbones)]
    if not shown:
        return []
    cases = shown[0].popularity_groups["cases"]
    header = ["method", "backbone"] + [f"G{g + 1} ({int(n)} cases)" for g, n in enumerate(cases)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for agg in shown:
        values = [f"{v:.4f}" for v in agg.popularity_groups[metric]]
        lines.append("| " + " | ".join([modes.label(agg.method), _group_backbone(agg), *values]) + " |")
    return lines


def _group_backbone(agg: Aggregate) -> str:
    """The backbone column of the group table, saying when the groups come from fewer seeds than the row's
    metrics (some seeds recorded without per-case ranks, e.g. one seed re-trained beside two recorded ones)."""
    label = agg.backbone or "(none)"
    with_ranks = int(agg.popularity_groups.get("seeds_with_ranks", [agg.n])[0])
    return f"{label} (groups: {with_ranks} of {agg.n} seeds)" if with_ranks < agg.n else label


def epoch_caps(cells: list[Cell]) -> str:
    """The epoch cap the backbone cells actually ran with (from their own configs, reused and recorded ones too)."""
    per_method: dict[str, set] = defaultdict(set)
    for cell in cells:
        if cell.ok and cell.requested and cell.backbone is not None:
            per_method[cell.name] |= {r.config.get("epochs") for r in cell.runs if r.config.get("epochs")}
    values = set().union(*per_method.values()) if per_method else set()
    if len(values) <= 1:
        return f"epochs={values.pop()}" if values else ""
    return "epoch cap " + ", ".join(f"{modes.label(m)} {'/'.join(str(v) for v in sorted(caps))}"
                                    for m, caps in per_method.items())


def recorded_list(cells: list[Cell]) -> list[str]:
    """Markdown lines naming the cells reported from `--recorded` (grouped per method and backbone)."""
    groups: dict[tuple, list[str]] = defaultdict(list)
    for cell in cells:
        if cell.status == "recorded" and cell.requested:
            label = cell.name if cell.backbone is None else f"{cell.name}/{cell.backbone}"
            groups[(label, cell.reason)] += [] if cell.seed is None else [f"seed{cell.seed}"]
    return [f"- `{label}`{' ' + ', '.join(seeds) if seeds else ''}: {reason}"
            for (label, reason), seeds in groups.items()]


def cell_lists(cells: list[Cell], config: QualityConfig) -> tuple[list[str], list[str]]:
    """(cut-short cells, missing cells) as markdown bullet lines."""
    cut, missing = [], []
    for cell in cells:
        if cell.ok and cell.cut_short():
            epochs = {r.config.get("epochs_run") for r in cell.runs}
            cut.append(f"- `{cell.label}`: training budget ({config.max_train_minutes or '?'} min) ran out after "
                       f"{', '.join(str(e) for e in epochs)} epoch(s); the best epoch was evaluated")
        elif cell.ok and any(at_epoch_cap(r) for r in cell.runs):
            cap = next(r.config["epochs"] for r in cell.runs if at_epoch_cap(r))
            cut.append(f"- `{cell.label}`: ‡ its best epoch was the last allowed one ({cap}): still improving when "
                       "the epoch cap stopped it")
        elif not cell.ok:
            role = "" if cell.requested else " (prerequisite of LLMEmb / TSLRec)"
            missing.append(f"- `{cell.label}`{role}: {cell.status}: {cell.reason}")
        else:
            present = {r.protocol for r in cell.runs}
            absent = [p for p in config.protocols if p not in present]
            if absent and cell.requested:
                missing.append(f"- `{cell.label}`: protocol(s) {', '.join(absent)} not in its results.json"
                               f"{' (' + cell.reason + ')' if cell.reason else ''}")
    return cut, missing


def item_layer_note(config: QualityConfig) -> list[str]:
    """The tables' footnote on the item-layer rows (nothing when every cell is init)."""
    if config.item_layers == [modes.INIT]:
        return []
    with_table = [registry.label(m) for m in registry.names() if m in config.methods and modes.takes_modes(m)]
    text = (f"Item layers (`--item-layers {','.join(config.item_layers)}`, docs/seqrec.md): a row \"M (frozen)\" "
            "or \"M (dual, F)\" is method M's table in that item layer (`semrec train seqrec --init TABLE "
            "--item-layer frozen|dual --fusion F`), a plain row is its init cell (the ID embedding starts from the "
            f"table){'; a row per item layer: ' + ', '.join(with_table) if with_table else ''}.")
    if "llmemb" in config.methods and any(m != modes.INIT for m in config.item_layers):
        text += (" LLMEmb's plain row is its native cell (RAT: the frozen SCFT table behind its adapter, plus the "
                 "collaborative alignment to an ID-based SASRec); its other rows are plain seqrec cells on its SCFT "
                 "table, without the alignment.")
    single = [registry.label(m) for m in registry.names() if m in config.methods and not modes.takes_modes(m)]
    if single:
        text += f" {', '.join(single)}: one row each (no table of their own"
        text += "; TSLRec's gated fusion of knowledge and ID embeddings is already a two-view item layer)." \
            if "tslrec" in config.methods else ")."
    return [text, ""]


def markdown(aggregates: list[Aggregate], cells: list[Cell], config: QualityConfig, dataset_name: str,
             results_path: Path, command: str, images: list[Path] | None = None,
             kept_images: list[Path] | None = None) -> str:
    cut, missing = cell_lists(cells, config)
    seeds = ",".join(str(s) for s in config.seeds)
    training = ", ".join(f"{k}={v}" for k, v in config.model_dump().items()
                         if k in ("patience", "lr", "dim", "dropout", "batch_size", "threads")
                         and v is not None)
    caps = epoch_caps(cells)
    if caps:
        training += (", " if training else "") + caps
    listed = [m for m in registry.names() if m in config.methods]
    no_backbone = ", ".join(registry.label(m) for m in listed if m in registry.without_backbone())
    llm = ", ".join(registry.label(m) for m in listed if m in registry.llm_initialised())
    base = ", ".join(registry.label(m) for m in listed if m in registry.baselines())
    groups = popularity_group_table(aggregates, config)
    lines = [
        f"# Quality grid: {dataset_name}",
        "",
        f"Produced by `{command}`; all runs in `{results_path}`. Backbone cells: loss {config.loss}, seeds {seeds}, "
        f"training budget {f'{config.max_train_minutes} min per cell' if config.max_train_minutes else 'none'}"
        f"{', ' + training if training else ''}. Each number is the mean ± sample std over the seeds of the "
        "test split (leave-one-out, pessimistic ties); (n=k): only k seeds finished; †: at least one seed was cut "
        "short by the budget; ‡: at least one seed was still improving at the epoch cap; -: no result (listed "
        "below)."
        + (f" {no_backbone} need no backbone: the same number appears under each." if no_backbone else ""),
        "",
        "## A. Full ranking (layout of the SAID paper, Table 2)",
        "",
        *said_table(aggregates, config),
        "",
        f"Improv.: relative change of the best LLM-initialised method ({llm or 'none run'}) over the best "
        f"baseline ({base or 'none run'}) in that column"
        f"{', any item layer' if any(m != modes.INIT for m in config.item_layers) else ''}.",
        "",
        *item_layer_note(config),
        "## B. Sampled-100 protocol, overall and tail items (layout of the LLMEmb paper, Table 1)",
        "",
        *llmemb_table(aggregates, config),
        "",
        "Tail: test cases whose target is outside the 20% most popular training items. H@10 = Recall@10.",
        "",
        *(["## C. Full-ranking NDCG@10 by item-popularity group (the numbers of the popularity-group figure)", "",
           *groups, "",
           f"G1 holds the least popular {100 // config.popularity_groups}% of the items by training interactions, "
           f"G{config.popularity_groups} the most popular; each test case counts in its target's group; "
           "backbone methods: mean over the seeds with per-case ranks.", ""] if groups else []),
        "## Cells cut short by the training budget or the epoch cap",
        "",
        *(cut or ["(none)"]),
        "",
        "## Missing cells",
        "",
        *(missing or ["(none)"]),
        "",
    ]
    recorded = recorded_list(cells)
    if recorded:
        lines += ["## Cells reported from an earlier results file", "",
                  "Their run directories are not on this machine (`--recorded`): their rows are copied from the "
                  "file named, and their popularity-group means from its aggregate rows (or, for a method without "
                  "a backbone, the breakdown its run kept).", "", *recorded, ""]
    if images:
        lines += ["## Figures", ""] + [f"![{p.stem}]({p})" for p in images] + [""]
    if kept_images:
        lines += ["Not redrawn by this run (`--figures`), as an earlier run of the grid drew them:", ""]
        lines += [f"![{p.stem}]({p})" for p in kept_images] + [""]
    return "\n".join(lines)
