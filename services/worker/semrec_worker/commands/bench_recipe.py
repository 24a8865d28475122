"""`semrec bench recipe`: tune the training recipe per backbone and item table on validation (coordinate
descent over loss, augmentation, dropout, lr, width, history length), then evaluate only the chosen setting
of each sweep on test. Writes results/recipe-sweep-<dataset>.json and .md (see docs/seqrec.md)."""

from __future__ import annotations

from pathlib import Path

from semrec.cli_builder import CommandGroups, config_command, echo

from semrec_worker.core.checks import require_existing
from semrec_worker.data.dataset import load_dataset
from semrec_worker.experiments.config import RecipeConfig


def bench_recipe(config: RecipeConfig) -> Path:
    from semrec_worker.core.runtime import apply_threads
    from semrec_worker.experiments import recipe  # imports torch: only when the command runs

    for init in config.inits:  # before the data loads
        if init != "random":
            require_existing("--inits", Path(init).expanduser(), "no such file or run directory")
    apply_threads(config.threads)
    dataset = load_dataset(config)
    runs_dir = config.runs_dir or Path("runs") / f"recipe-{dataset.name}"
    out = config.results or Path("results") / f"recipe-sweep-{dataset.name}.json"
    every: list[recipe.Cell] = []
    tests = []
    for backbone in config.backbones:
        for init in config.inits:
            before = list(every)
            def record(cells: list[recipe.Cell], before: list[recipe.Cell] = before,
                       tests: list = tests) -> None:  # every finished cell is in the file at once
                recipe.write_sweep(out, dataset.name, before + cells, tests)

            cells = recipe.sweep(config, backbone, init, dataset, runs_dir, on_cell=record)
            every += cells
            best = recipe.chosen(cells)
            echo(f"{backbone}/{best.init}: chosen {recipe.setting_key(best.settings)} "
                 f"(valid ndcg@10 {best.score:.4f}, {len(cells)} cells)")
            if config.evaluate_test:
                tests += recipe.evaluate_chosen(best, config, dataset)
            recipe.write_sweep(out, dataset.name, every, tests)
    out.with_suffix(".md").write_text(recipe.markdown(out))
    echo(f"sweep: {out}, tables: {out.with_suffix('.md')}")
    return out


def register(groups: CommandGroups) -> None:
    config_command(
        groups.bench,
        "recipe",
        RecipeConfig,
        bench_recipe,
        "Training-recipe sweep on validation only (coordinate descent over --losses, --augments, --dropouts, --lrs, "
        "--dims, --max-lens per backbone and --inits table); the chosen cell of each sweep alone is evaluated on "
        "test. Cells under RUNS_DIR/<backbone>/<init>/<settings>, reused when done; writes "
        "results/recipe-sweep-<dataset>.json.",
    )
