"""`semrec eval sknn|vsknn|cooc`: the non-neural baselines (models/knn.py) under the shared protocol.

`--split valid` evaluates on the validation item instead (for choosing k / weighting / window without
touching the test split): the data is then cut one item earlier, so the fit sees s[:-2] and ranks s[-2].
Defaults: the settings chosen on amazon2018-scientific's validation split (docs/seqrec.md, "Non-neural
baselines").

Each run's config keeps its NDCG@10 / Recall@10 per item-popularity group (`popularity_groups`, the layout of
the quality grid's aggregate rows), so `semrec bench quality --recorded` can put the baseline in the
popularity-group figure without the per-case ranks.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Literal

from pydantic import Field
from semrec.cli_builder import CommandGroups, config_command, echo
from semrec.results import RunResult, write_results

from semrec_worker.data.dataset import SequenceDataset, load_dataset
from semrec_worker.evaluation.jobs import EvalJobConfig, evaluate_runs
from semrec_worker.models.knn_settings import COOC_DEFAULTS, SKNN_DEFAULTS, VSKNN_DEFAULTS


class KNNEvalConfig(EvalJobConfig):
    split: Literal["valid", "test"] = Field("test", description="rank the test item, or the validation item")
    popularity_tiebreak: bool = Field(True, description="order items with equal scores by training popularity")
    append: bool = Field(False, description="add the runs to the results file instead of replacing it")
    popularity_groups: int = Field(5, ge=2, description="item-popularity groups of the per-group breakdown kept "
                                   "in each run's config")


class EvalSKNNConfig(KNNEvalConfig):
    k: int = Field(SKNN_DEFAULTS["k"], ge=1, description="neighbour sessions")


class EvalVSKNNConfig(KNNEvalConfig):
    k: int = Field(VSKNN_DEFAULTS["k"], ge=1, description="neighbour sessions")
    weighting: Literal["linear", "div"] = Field(VSKNN_DEFAULTS["weighting"], description="recency weight of the p-th of t query items: "
                                                "linear p/t or div 1/(t-p+1)")


class EvalCoocConfig(KNNEvalConfig):
    window: int = Field(COOC_DEFAULTS["window"], ge=1, description="co-occurrence window (positions ahead, weight 1/gap)")
    history: int = Field(COOC_DEFAULTS["history"], ge=1, description="last items of the history that vote")
    decay: float = Field(COOC_DEFAULTS["decay"], gt=0, le=1, description="weight decay^j of the j-th most recent "
                         "voting item")
    symmetric: bool = Field(COOC_DEFAULTS["symmetric"], description="count pairs in both directions")


def validation_view(dataset: SequenceDataset) -> SequenceDataset:
    """The dataset cut one item earlier: its test case is the original validation case."""
    return dataclasses.replace(dataset, sequences=[s[:-1] for s in dataset.sequences])


def _eval(config: KNNEvalConfig, method: str, build) -> list[RunResult]:
    dataset = load_dataset(config)
    evaluated = validation_view(dataset) if config.split == "valid" else dataset
    start = time.perf_counter()
    model = build(evaluated)
    with tempfile.TemporaryDirectory() as tmp:
        ranks_path = Path(tmp) / "ranks.npz"
        runs = evaluate_runs(model, evaluated, config, method, train_s=time.perf_counter() - start,
                             extra_config={"split": config.split}, ranks_path=ranks_path)
        add_group_breakdown(runs, evaluated, ranks_path, config.popularity_groups)
    for run in runs:
        run.dataset = dataset.name
    out = config.results or Path("results") / f"{method}-{dataset.name}.json"
    write_results(out, runs, append=config.append)
    echo(f"results written to {out}")
    return runs


def add_group_breakdown(runs: list[RunResult], dataset: SequenceDataset, ranks_path: Path, n_groups: int) -> None:
    """`popularity_groups` in each run's config, from the per-case ranks (groups by training popularity, as the
    quality grid's)."""
    import numpy as np

    from semrec_worker.evaluation.popularity import metrics_by_group, popularity_groups
    from semrec_worker.experiments.tables import group_means

    item_groups = popularity_groups(dataset.item_counts("train"), n_groups)
    with np.load(ranks_path) as saved:
        for run in runs:
            per_group = metrics_by_group(saved[run.protocol], saved["targets"], item_groups, n_groups)
            run.config["popularity_groups"] = group_means([per_group], n_groups)


def eval_sknn(config: EvalSKNNConfig) -> list[RunResult]:
    from semrec_worker.models.knn import SessionKNN  # torch only when the command runs

    return _eval(config, "sknn", lambda d: SessionKNN.fit(d, "test", k=config.k,
                                                          popularity_tiebreak=config.popularity_tiebreak))


def eval_vsknn(config: EvalVSKNNConfig) -> list[RunResult]:
    from semrec_worker.models.knn import SessionKNN

    return _eval(config, "vsknn", lambda d: SessionKNN.fit(d, "test", k=config.k, weighting=config.weighting,
                                                           popularity_tiebreak=config.popularity_tiebreak))


def eval_cooc(config: EvalCoocConfig) -> list[RunResult]:
    from semrec_worker.models.knn import CooccurrenceRecommender

    return _eval(config, "cooc", lambda d: CooccurrenceRecommender.fit(
        d, "test", window=config.window, history=config.history, decay=config.decay, symmetric=config.symmetric,
        popularity_tiebreak=config.popularity_tiebreak))


def register(groups: CommandGroups) -> None:
    config_command(groups.eval, "sknn", EvalSKNNConfig, eval_sknn,
                   "Session kNN (Ludewig et al.): the k most similar users' sessions (cosine of item sets) vote.")
    config_command(groups.eval, "vsknn", EvalVSKNNConfig, eval_vsknn,
                   "V-SKNN: session kNN whose similarity weighs the history's items by recency.")
    config_command(groups.eval, "cooc", EvalCoocConfig, eval_cooc,
                   "Windowed item co-occurrence (sequential rules): items that followed the last item(s).")
