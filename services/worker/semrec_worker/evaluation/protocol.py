"""Evaluate any `Recommender` on the leave-one-out split.

- `full`: the target is ranked against all items (SAID protocol). The user's own history is NOT
  excluded unless `exclude_history` is set (then history items other than the target are masked).
- `sampled100`: the target is ranked against 100 items drawn uniformly, with a fixed seed, from the
  items the user never interacted with (LLMEmb protocol).
- head/tail: items in the top 20% by training popularity are head, the rest tail (Pareto split as in
  LLMEmb); metrics are also reported for test cases grouped by their target's group.
Scoring is batched over users and fully vectorised.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import torch
from pydantic import Field
from semrec.config import StrictModel
from semrec.errors import UserError

from semrec_worker.data.dataset import SequenceDataset
from semrec_worker.evaluation.metrics import metrics_from_ranks, ranking_dtype, ranks_from_scores


class Recommender(Protocol):
    """Anything that scores every item for a batch of histories (RecBole's `full_sort_predict`)."""

    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        """Scores of shape [batch, n_items + 1]; column 0 is padding and is ignored."""
        ...


class EvalSettings(StrictModel):
    protocol: Literal["full", "sampled100"] = Field("full", description="full ranking or 100 sampled negatives")
    exclude_history: bool = Field(False, description="mask items already in the user's history (full protocol)")
    head_fraction: float = Field(0.2, gt=0, lt=1, description="share of items (by popularity) that are head")
    eval_batch_size: int = Field(512, ge=1, description="users scored per batch")
    eval_seed: int = Field(0, description="seed of the sampled negatives")


@dataclass
class Evaluation:
    metrics: dict[str, float]
    head: dict[str, float]
    tail: dict[str, float]
    n_cases: int
    wall_s: float
    settings: EvalSettings
    ranks: np.ndarray = field(repr=False)

    def describe(self) -> str:
        s = self.settings
        text = (
            f"protocol={s.protocol} history={'excluded' if s.exclude_history else 'not excluded'} "
            f"ties=pessimistic cases={self.n_cases}"
        )
        return text + " | " + " ".join(f"{k}={v:.4f}" for k, v in self.metrics.items())


def head_items(dataset: SequenceDataset, fraction: float = 0.2) -> np.ndarray:
    """Boolean mask over item indices 0..n: True for the most popular ceil(fraction * n) items in training."""
    counts = dataset.item_counts("train")[1:]
    n_head = math.ceil(fraction * dataset.n_items)
    order = np.argsort(-counts, kind="stable")
    mask = np.zeros(dataset.n_items + 1, dtype=bool)
    mask[order[:n_head] + 1] = True
    return mask


def _sampled_candidates(dataset: SequenceDataset, targets: np.ndarray, n_neg: int, seed: int) -> np.ndarray:
    """[users, 1 + n_neg] item indices: the target first, then distinct items the user never interacted with."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(targets), 1 + n_neg), dtype=np.int64)
    out[:, 0] = targets
    for u, seq in enumerate(dataset.sequences):
        seen = set(seq.tolist())
        if dataset.n_items - len(seen) < n_neg:
            raise UserError(
                f"sampled protocol: user {dataset.user_ids[u]} has fewer than {n_neg} items left to sample"
            )
        chosen: dict[int, None] = {}
        while len(chosen) < n_neg:
            for d in rng.integers(1, dataset.n_items + 1, size=2 * n_neg).tolist():
                if d not in seen and d not in chosen:
                    chosen[d] = None
                    if len(chosen) == n_neg:
                        break
        out[u, 1:] = list(chosen)
    return out


def evaluate(
    model: Recommender,
    dataset: SequenceDataset,
    split: Literal["valid", "test"] = "test",
    settings: EvalSettings | None = None,
) -> Evaluation:
    settings = settings or EvalSettings()
    start = time.perf_counter()
    histories, targets = dataset.split(split)
    candidates = (
        _sampled_candidates(dataset, targets, 100, settings.eval_seed) if settings.protocol == "sampled100" else None
    )
    ranks = np.empty(len(targets), dtype=np.int64)
    bs = settings.eval_batch_size
    with torch.inference_mode():
        for lo in range(0, len(targets), bs):
            hi = min(lo + bs, len(targets))
            scores = torch.as_tensor(model.score(histories[lo:hi]))
            scores = scores.to(ranking_dtype(scores))
            tgt = torch.as_tensor(targets[lo:hi])
            if candidates is not None:
                cand = torch.as_tensor(candidates[lo:hi])
                ranks[lo:hi] = ranks_from_scores(scores.gather(1, cand), torch.zeros_like(tgt)).numpy()
                continue
            valid = torch.ones_like(scores, dtype=torch.bool)
            valid[:, 0] = False
            if settings.exclude_history:
                for row, hist in enumerate(histories[lo:hi]):
                    valid[row, torch.as_tensor(hist)] = False
                valid[torch.arange(hi - lo), tgt] = True
            ranks[lo:hi] = ranks_from_scores(scores, tgt, valid).numpy()
    head_mask = head_items(dataset, settings.head_fraction)[targets]
    return Evaluation(
        metrics=metrics_from_ranks(ranks),
        head=metrics_from_ranks(ranks[head_mask]),
        tail=metrics_from_ranks(ranks[~head_mask]),
        n_cases=len(targets),
        wall_s=time.perf_counter() - start,
        settings=settings,
        ranks=ranks,
    )
