"""Evaluate a saved run on any dataset with the shared protocol (`semrec eval run`).

The dataset's item index need not match the model's: histories are mapped by item id (ids the model does not
know are skipped) and a dataset item the model cannot score gets -inf, so a test target the model has never
seen is ranked last (ties are pessimistic). On the run's own dataset the results equal the trainer's.
"""

from __future__ import annotations

import numpy as np
import torch
from semrec.results import RunResult

from semrec_worker.api.dataset import Dataset
from semrec_worker.api.recommender import Recommender


class MappedScorer:
    """A `Recommender` (API) as an evaluation `Recommender` over another dataset's item index."""

    def __init__(self, model: Recommender, dataset: Dataset) -> None:
        self.model = model
        to_model = [model.index.get(item_id, 0) for item_id in dataset.sequences.item_ids]
        self.to_model = np.asarray([0, *to_model], dtype=np.int64)  # dataset index -> model index (0: unknown)
        self.known = self.to_model > 0
        self.unknown_items = int((~self.known[1:]).sum())

    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        rows = [m[m > 0] for m in (self.to_model[h] for h in histories)]
        model_scores = self.model._score_rows(rows)  # [B, model items]
        out = np.full((len(histories), len(self.to_model)), -np.inf, dtype=np.float32)
        out[:, self.known] = model_scores[:, self.to_model[self.known] - 1]
        return torch.from_numpy(out)


def evaluate_run(
    run_dir, dataset: Dataset, protocols: list[str], exclude_history: bool = False, eval_seed: int = 0,
    split: str = "test",
) -> tuple[list[RunResult], int]:
    """(results per protocol on `split`, number of dataset items the model does not know)."""
    from semrec_worker.evaluation.jobs import EvalJobConfig, evaluate_runs
    from semrec_worker.training.config import load_seqrec_config

    model = Recommender.from_run(run_dir, dataset=dataset)
    run_config = load_seqrec_config(run_dir)
    scorer = MappedScorer(model, dataset)
    settings = dataset.settings.model_dump()
    config = EvalJobConfig(
        **{k: v for k, v in settings.items() if k in EvalJobConfig.model_fields},
        protocols=protocols,
        exclude_history=exclude_history,
        eval_seed=eval_seed,
    )
    method = run_method(run_dir)
    runs = evaluate_runs(
        scorer, dataset.sequences, config, method, backbone=run_config.backbone, loss=run_config.loss,
        seed=run_config.seed, extra_config={"run": str(run_dir), "unknown_items": scorer.unknown_items,
                      "history_bias": run_config.history_bias}, split=split,
    )  # fmt: skip
    return runs, scorer.unknown_items


def run_method(run_dir) -> str:
    import json
    from pathlib import Path

    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    tests = metrics.get("test") or []
    return str(tests[0]["method"]) if tests else str(metrics.get("init", {}).get("method", "seqrec"))
