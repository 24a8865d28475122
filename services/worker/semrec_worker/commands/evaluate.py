"""`semrec eval popularity`: the first model, evaluated by the shared protocol."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field
from semrec.cli_builder import CommandGroups, config_command, echo
from semrec.results import RunResult, write_results

from semrec_worker.core.runtime import apply_threads
from semrec_worker.data.dataset import load_dataset
from semrec_worker.evaluation.jobs import EvalJobConfig, evaluate_runs


class EvalPopularityConfig(EvalJobConfig):
    threads: int | None = Field(None, ge=1, description="CPU threads of the scoring (default: torch's choice)")


def eval_popularity(config: EvalPopularityConfig) -> list[RunResult]:
    from semrec_worker.models.popularity import PopularityRecommender  # torch only when the command runs

    apply_threads(config.threads)
    dataset = load_dataset(config)
    start = time.perf_counter()
    model = PopularityRecommender.fit(dataset, "test")
    runs = evaluate_runs(model, dataset, config, "popularity", train_s=time.perf_counter() - start)
    out = config.results or Path("results") / f"popularity-{dataset.name}.json"
    write_results(out, runs)
    echo(f"results written to {out}")
    return runs


def register(groups: CommandGroups) -> None:
    config_command(
        groups.eval,
        "popularity",
        EvalPopularityConfig,
        eval_popularity,
        "Most-popular baseline under the full-ranking and sampled-100 protocols (with head/tail split).",
    )
