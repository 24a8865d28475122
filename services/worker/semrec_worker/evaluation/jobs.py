"""An evaluation job: the shared test-protocol settings (`EvalJobConfig`) and `evaluate_runs`, which turns
one trained model into results-schema `RunResult`s under each configured protocol.

Every trainer and every `semrec eval` command reports through `evaluate_runs`, so their results JSON rows
are comparable. The config is importable without torch (the CLI builds its flags from it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import Field
from semrec.cli_builder import echo
from semrec.results import RunResult
from semrec.vocabulary import OldName

from semrec_worker.data.dataset import DataConfig, SequenceDataset

if TYPE_CHECKING:  # torch loads only when something is evaluated, not for `semrec --help`
    from semrec_worker.evaluation.protocol import Recommender

Protocol = Literal["full", "sampled100"]
PROTOCOLS: tuple[str, ...] = ("full", "sampled100")
TEST_RANKS = "test_ranks.npz"  # per test case: `targets` (item index) and `<protocol>` (0-based rank)


class EvalJobConfig(DataConfig):
    old_names: ClassVar[dict[str, str | OldName]] = {"out": "results"}

    protocols: list[Protocol] = Field(["full", "sampled100"], description="protocols to run")
    exclude_history: bool = Field(False, description="mask items from the user's history (full protocol)")
    eval_seed: int = Field(0, description="seed of the sampled negatives")
    results: Path | None = Field(None, description="results JSON (default results/<method>-<dataset>.json)")


def evaluate_runs(
    model: Recommender,
    dataset: SequenceDataset,
    config: EvalJobConfig,
    method: str,
    backbone: str | None = None,
    loss: str | None = None,
    seed: int | None = None,
    train_s: float = 0.0,
    extra_config: dict | None = None,
    ranks_path: Path | None = None,
    split: Literal["valid", "test"] = "test",
) -> list[RunResult]:
    """Results of one trained model on `split` (test, or valid for choosing settings) under each configured
    protocol, printed as they come.

    With `ranks_path`, each test case's rank per protocol is saved there (npz), so breakdowns that the
    results schema does not hold (e.g. NDCG by item-popularity group) can be computed later.
    """
    # the protocol scores with torch: imported here so that the config above stays torch-free
    from semrec_worker.evaluation.protocol import EvalSettings, evaluate

    runs = []
    ranks: dict[str, np.ndarray] = {"targets": dataset.split(split)[1]}
    for protocol in config.protocols:
        settings = EvalSettings(protocol=protocol, exclude_history=config.exclude_history, eval_seed=config.eval_seed)
        result = evaluate(model, dataset, split, settings)
        ranks[protocol] = result.ranks
        where = "" if split == "test" else f" [{split}]"
        echo(f"{dataset.name} {method}{'/' + backbone if backbone else ''}{where}: {result.describe()}")
        runs.append(
            RunResult(
                dataset=dataset.name,
                method=method,
                backbone=backbone,
                loss=loss,
                protocol=protocol,
                seed=seed,
                metrics=result.metrics,
                head=result.head,
                tail=result.tail,
                wall_s=round(train_s + result.wall_s, 3),
                config={**config.to_dict(), **(extra_config or {}), "ties": "pessimistic",
                        **({} if split == "test" else {"split": split})},
            )
        )
    if ranks_path is not None:
        assert split == "test", "per-case ranks are saved for the test split only"
        Path(ranks_path).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(ranks_path, **ranks)
    return runs
