"""`semrec eval popularity`: the first model, evaluated by the shared protocol."""

from __future__ import annotations

import time
from pathlib import Path

from semrec.cli_builder import CommandGroups, config_command, echo
from semrec.results import RunResult, write_results

from semrec_worker.data.dataset import load_dataset
from semrec_worker.evaluation.jobs import EvalJobConfig, evaluate_runs


def eval_popularity(config: EvalJobConfig) -> list[RunResult]:
    from semrec_worker.models.popularity import PopularityRecommender  # torch only when the command runs

    dataset = load_dataset(config)
    start = time.perf_counter()
    model = PopularityRecommender.fit(dataset, "test")
    runs = evaluate_runs(model, dataset, config, "popularity", train_s=time.perf_counter() - start)
    out = config.out or Path("results") / f"popularity-{dataset.name}.json"
    write_results(out, runs)
    echo(f"results written to {out}")
    return runs


def register(groups: CommandGroups) -> None:
    config_command(
        groups.eval,
        "popularity",
        EvalJobConfig,
        eval_popularity,
        "Most-popular baseline under the full-ranking and sampled-100 protocols (with head/tail split).",
    )
