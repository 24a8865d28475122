"""`semrec eval run --run RUN_DIR [--data PATH]`: a saved run evaluated on a dataset by the shared protocol."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from semrec.cli_builder import CommandGroups, config_command, echo
from semrec.config import JobConfig
from semrec.errors import UserError
from semrec.results import RunResult, write_results
from semrec.vocabulary import AcceptsOldNames, OldName

from semrec_worker.evaluation.jobs import Protocol


class EvalRunConfig(AcceptsOldNames, JobConfig):
    old_names: ClassVar[dict[str, str | OldName]] = {"out": "results", "max_seq_len": "history_cap"}

    run: Path = Field(..., description="a finished `semrec train seqrec` run directory")
    data: str | None = Field(None, description="dataset folder or 'synthetic[:...]' (default: the run's dataset)")
    format: Literal["auto", "common", "movielens", "amazon"] | None = Field(
        None, description="on-disk format (default: the run's, or auto for another --data)"
    )
    kcore: int | None = Field(None, ge=0, description="iterated k-core (default: the run's)")
    history_cap: int | None = Field(None, ge=3, description="keep each user's newest N interactions (default: the run's)")
    drop_unknown_items: bool | None = Field(
        None, description="drop interactions whose item is not in the items file (default: the run's)"
    )
    protocols: list[Protocol] = Field(["full", "sampled100"], description="protocols to run")
    split: Literal["valid", "test"] = Field(
        "test", description="split to score: valid for choosing settings, test once for the chosen ones"
    )
    exclude_history: bool = Field(False, description="mask items from the user's history (full protocol)")
    eval_seed: int = Field(0, description="seed of the sampled negatives")
    results: Path | None = Field(None, description="results JSON (default RUN_DIR/eval-<dataset>.json)")
    append: bool = Field(False, description="add the runs to an existing --results file instead of replacing it")
    threads: int | None = Field(None, ge=1, description="CPU threads of the scoring (default: torch's choice)")


def eval_run(config: EvalRunConfig) -> list[RunResult]:
    from semrec_worker.api import Dataset
    from semrec_worker.api.evaluate import evaluate_run
    from semrec_worker.core.runtime import apply_threads
    from semrec_worker.training.config import load_seqrec_config

    if not (config.run / "config.json").exists():
        raise UserError(f"--run {config.run}: not a seqrec run directory (no config.json)")
    apply_threads(config.threads)
    trained = load_seqrec_config(config.run)
    settings = {
        "format": config.format or (trained.format if config.data is None else "auto"),
        "kcore": trained.kcore if config.kcore is None else config.kcore,
        "history_cap": config.history_cap if config.history_cap is not None else trained.history_cap,
        "drop_unknown_items": trained.drop_unknown_items if config.drop_unknown_items is None else config.drop_unknown_items,
    }  # fmt: skip
    dataset = Dataset.from_path(config.data or trained.data, **settings)
    runs, unknown = evaluate_run(config.run, dataset, list(config.protocols), config.exclude_history, config.eval_seed,
                                  config.split)
    if unknown:
        echo(f"warning: {unknown} of the dataset's {dataset.n_items} items are not in the model "
             "(test cases with such a target are ranked last)")  # fmt: skip
    suffix = "" if config.split == "test" else f"-{config.split}"
    out = config.results or config.run / f"eval-{dataset.name}{suffix}.json"
    write_results(out, runs, append=config.append)
    echo(f"results {'appended to' if config.append else 'written to'} {out}")
    return runs


def register(groups: CommandGroups) -> None:
    config_command(
        groups.eval,
        "run",
        EvalRunConfig,
        eval_run,
        "Evaluate a saved seqrec run on a dataset (default: its own) with the shared protocol; items are matched "
        "by id, so another dataset of the same catalogue works too. Writes a results JSON.",
    )
