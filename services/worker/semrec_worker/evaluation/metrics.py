"""Ranking metrics from 0-based ranks of the target item.

Ties are ranked pessimistically: every other candidate whose score equals the target's is placed
ahead of it, rank = #{j != t: s_j > s_t} + #{j != t: s_j = s_t}. A model that scores everything
equally therefore gets the worst rank, never the best.

NaN is the worst score of all (below -inf): a NaN candidate is never ahead of a target with a number, and
a NaN target has every other candidate ahead of it (the NaN ones by the pessimistic-ties rule). A model
that outputs only NaN thus gets the worst rank. +inf and -inf are ordinary extremes (+inf ties +inf).

Scores are compared in the precision they come in: callers must not round float64 scores to float32,
which would turn near-equal scores into (pessimistic) ties; `ranking_dtype` says what to cast to.

With r the 0-based rank of the single relevant item:
    NDCG@k   = 1 / log2(r + 2) if r < k else 0      (IDCG = 1 for one relevant item)
    Recall@k = HR@k = 1 if r < k else 0
    MRR      = 1 / (r + 1)                           (no cut-off)
"""

from __future__ import annotations

import numpy as np
import torch

from semrec_worker.core.names import METRIC_NAMES


def ranks_from_scores(scores: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """0-based pessimistic rank of `targets` (column indices) in each row of `scores`.

    `valid` (bool, same shape) marks candidate columns; others (padding, masked items) never count.
    """
    target_scores = scores.gather(1, targets.view(-1, 1))
    # every comparison with NaN is false, so `>=` alone would put NaN candidates behind everything and a
    # NaN target ahead of everything; NaN is the worst score, so a NaN target has everyone ahead of it
    ahead = (scores >= target_scores) | target_scores.isnan()
    if valid is not None:
        ahead &= valid
    # the target itself is always counted by >=; take it back out
    return ahead.sum(dim=1) - ahead.gather(1, targets.view(-1, 1)).squeeze(1).long()


def ranking_dtype(scores: torch.Tensor) -> torch.dtype:
    """The dtype to rank `scores` in: float64 stays float64 (no near-ties created), anything else float32."""
    return torch.float64 if scores.dtype == torch.float64 else torch.float32


def metrics_from_ranks(ranks: np.ndarray | torch.Tensor, ks: tuple[int, ...] = (10, 20)) -> dict[str, float]:
    r = torch.as_tensor(ranks, dtype=torch.float64)
    if r.numel() == 0:
        return {}
    out: dict[str, float] = {}
    for k in ks:
        hit = r < k
        out[f"ndcg@{k}"] = float(torch.where(hit, 1.0 / torch.log2(r + 2.0), torch.zeros_like(r)).mean())
        out[f"recall@{k}"] = float(hit.double().mean())
    out["mrr"] = float((1.0 / (r + 1.0)).mean())
    order = [n for n in METRIC_NAMES if n in out] + [n for n in out if n not in METRIC_NAMES]
    return {name: out[name] for name in order}
