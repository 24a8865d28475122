"""`semrec bench quality`: every method x backbone x seed on one dataset, reused cell by cell, reported in
the layouts of the SAID paper's Table 2 and the LLMEmb paper's Table 1 (see docs/results.md)."""

from __future__ import annotations

import os
from pathlib import Path

from semrec.cli_builder import CommandGroups, config_command, echo
from semrec.item_table import ItemTable
from semrec.results import write_results

from semrec_worker.core.checks import require_existing
from semrec_worker.data.dataset import load_dataset
from semrec_worker.experiments.config import FIGURES, QualityConfig
from semrec_worker.experiments.config import command_line as flags_command_line
from semrec_worker.experiments.recorded import load_recorded
from semrec_worker.methods import registry


def command_line(config: QualityConfig) -> str:
    """The `semrec bench quality` flags that differ from the defaults (what reproduces this report)."""
    return flags_command_line("semrec bench quality", config)


def tsne_tables(config: QualityConfig, cells, runs_dir: Path) -> dict[str, object]:
    """The item tables of the t-SNE figure: each LLM method's input table and a trained random-init table."""
    from semrec_worker.experiments.grid import TABLE_FILE  # the grid imports torch: only when it runs

    tables: dict[str, object] = {}
    given = config.table_paths()
    for method in [m for m in registry.with_table() if m in config.methods]:
        path = given.get(method) or runs_dir / method / "table"
        if (path / TABLE_FILE).exists() or (path.suffix == ".npz" and path.exists()):
            tables[f"{registry.label(method)} (input table)"] = ItemTable.load(path)
    for method, name in (("tslrec", "TSLRec knowledge (stage 1)"), ("random", "Random init, after training")):
        done = [c for c in cells if c.method == method and c.ok and c.requested]
        if done:
            path = done[0].path / ("tslrec" if method == "tslrec" else "") / TABLE_FILE
            if path.exists():
                tables[f"{name}, {done[0].backbone} seed{done[0].seed}"] = ItemTable.load(path)
    return tables


def draw_figures(config: QualityConfig, cells, aggregates, dataset, runs_dir: Path) -> list[Path]:
    """The `--figures` of docs/results.md, drawn into --images-dir; returns the files written."""
    from semrec_worker.experiments import plots  # matplotlib only with --plots

    stem = config.images_dir / f"quality-{dataset.name}"
    drawn: list[Path | None] = []
    if "popularity-groups" in config.figures:
        drawn.append(plots.plot_popularity_groups(aggregates, config.backbones, Path(f"{stem}-popularity-groups.png"),
                                                  dataset.name))
    said = config.said_run or config.table_paths().get("said") or runs_dir / "said" / "table"
    if "said-accuracy" in config.figures and ("said" in config.methods or config.said_run is not None):
        drawn.append(plots.plot_said_accuracy(said, Path(f"{stem}-said-accuracy.png"), dataset.name))
        if drawn[-1] is None:
            echo(f"no SAID accuracy figure: {said} has no metrics.json with generation accuracy (--said-run)")
    item_tables = tsne_tables(config, cells, runs_dir) if "tsne" in config.figures else {}
    if item_tables:
        drawn.append(plots.plot_tsne(item_tables, dataset, Path(f"{stem}-tsne.png"), config.tsne_items))
    images = [p for p in drawn if p is not None]
    for path in images:
        echo(f"figure: {path}")
    return images


def bench_quality(config: QualityConfig) -> Path:
    # the grid and its tables import torch: only when the command runs, not for `semrec --help`
    from semrec_worker.core.runtime import apply_threads
    from semrec_worker.experiments import tables
    from semrec_worker.experiments.grid import check_tables, default_runs_dir, run_grid

    for method, path in config.table_paths().items():  # before the data loads
        require_existing(f"--tables {method}=", path, "no such file or run directory")
    check_tables(config)
    for path in config.recorded:
        require_existing("--recorded", path, "no such file")
    apply_threads(config.threads)
    dataset = load_dataset(config)
    runs_dir = config.runs_dir or default_runs_dir(dataset.name)
    recorded = load_recorded(config.recorded, dataset.name) if config.recorded else None
    cells = run_grid(config, dataset, runs_dir, recorded)

    runs = tables.grid_runs(cells)
    aggregates = tables.aggregate(runs)
    tables.add_popularity_groups(aggregates, cells, dataset, config.popularity_groups, recorded)
    out = config.results or Path("results") / f"quality-{dataset.name}.json"
    write_results(out, runs + tables.aggregate_rows(aggregates, dataset.name, config.loss))

    images: list[Path] = []
    kept: list[Path] = []
    if config.plots:
        config.images_dir.mkdir(parents=True, exist_ok=True)
        images = draw_figures(config, cells, aggregates, dataset, runs_dir)
        kept = [path for name in FIGURES if name not in config.figures
                for path in [config.images_dir / f"quality-{dataset.name}-{name}.png"] if path.exists()]

    md_path = out.with_suffix(".md")
    relative = [[Path(os.path.relpath(p, md_path.parent)) for p in paths] for paths in (images, kept)]
    md_path.write_text(tables.markdown(aggregates, cells, config, dataset.name, out, command_line(config), *relative))
    failed = [c for c in cells if not c.ok]
    echo(f"results: {out}, tables: {md_path} ({sum(c.ok for c in cells)} of {len(cells)} cells"
         f"{f'; {len(failed)} missing, listed in the markdown' if failed else ''})")
    return out


def register(groups: CommandGroups) -> None:
    config_command(
        groups.bench,
        "quality",
        QualityConfig,
        bench_quality,
        "Reproduction grid: popularity, LLMSeqSim and Random/LH/LLM2X/SAID/LLMEmb/TSLRec x GRU4Rec/SASRec x seeds, "
        "the table methods in each of --item-layers (cells under RUNS_DIR/<method>[+<mode>]/<backbone>/seed<S>, "
        "reused when done); writes results/quality-<dataset>"
        ".json and .md (SAID Table 2 and LLMEmb Table 1 layouts), --plots draws the docs/results.md figures.",
    )
