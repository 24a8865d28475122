"""Score many fusion weightings of the same parts in one pass over a split (`semrec eval hybrid`).

`ScoreFusion` + `evaluate` would score every part again for every weighting. Here each batch of histories is
scored by each part once, z-scored once (`standardised`), and every weighting w is ranked from
sum_p w_p z_p(i), so a grid of W weightings costs one scoring of the parts plus W weighted sums. The ranks are
the shared protocol's (full ranking, pessimistic ties, the history kept unless `exclude_history`), identical to
`evaluate(ScoreFusion(...))`.

Selection under a tail constraint: `choose` returns the weighting with the best overall validation NDCG@10,
or, with a `TailConstraint`, the best among those that keep, in every popularity group but the head, at least
a share r of a reference's NDCG@10 (e.g. 90% of text similarity's own in the four least popular fifths). With
a confidence z > 0 the share must hold with a margin: on the group's cases i, the paired differences
d_i = NDCG@10_i(weighting) - r * NDCG@10_i(reference) must have a one-sided lower confidence bound

    mean(d) - z * std(d) / sqrt(n) >= 0      (normal approximation; z = 0: the plain floor)

so that a weighting passing on validation by less than that split's noise is not taken for one that keeps the
tail on unseen cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from semrec_worker.data.dataset import SequenceDataset
from semrec_worker.evaluation.metrics import metrics_from_ranks, ranks_from_scores
from semrec_worker.evaluation.popularity import metrics_by_group, popularity_groups
from semrec_worker.models.fusion import Scorer, standardised


@dataclass
class Weighting:
    weights: tuple[float, ...]  # one per part, in the parts' order
    metrics: dict[str, float]
    group_ndcg: list[float]  # NDCG@10 per popularity group, least popular first
    case_ndcg: np.ndarray = field(repr=False, compare=False)  # NDCG@10 of each case of the split
    case_groups: np.ndarray = field(repr=False, compare=False)  # popularity group of each case's target


def weight_grid_ranks(
    parts: Sequence[Scorer],
    weightings: Sequence[Sequence[float]],
    dataset: SequenceDataset,
    split: str,
    *,
    exclude_history: bool = False,
    batch_size: int = 256,
) -> np.ndarray:
    """0-based ranks of the split's targets, shape (len(weightings), cases), under the full protocol."""
    histories, targets = dataset.split(split)
    weights = torch.as_tensor(np.asarray(weightings, dtype=np.float64))
    if weights.ndim != 2 or weights.shape[1] != len(parts):
        raise ValueError(f"each weighting needs {len(parts)} weights, got shape {tuple(weights.shape)}")
    ranks = np.empty((len(weights), len(targets)), dtype=np.int64)
    with torch.inference_mode():
        for lo in range(0, len(targets), batch_size):
            hi = min(lo + batch_size, len(targets))
            batch = histories[lo:hi]
            z = [standardised(part.score(batch)) for part in parts]
            finite = torch.stack([torch.isfinite(p) for p in z]).all(0)  # -inf in any part stays -inf
            z = [torch.where(finite, p, torch.zeros_like(p)) for p in z]
            valid = torch.ones_like(finite)  # as `evaluate`: -inf candidates still count (pessimistic ties)
            valid[:, 0] = False
            tgt = torch.as_tensor(targets[lo:hi])
            if exclude_history:
                for row, hist in enumerate(batch):
                    valid[row, torch.as_tensor(hist)] = False
                valid[torch.arange(hi - lo), tgt] = True
            for k, row_weights in enumerate(weights):
                total = sum(float(w) * p for w, p in zip(row_weights, z, strict=True))
                total = torch.where(finite, total, torch.full_like(total, -torch.inf))
                total[:, 0] = -torch.inf
                ranks[k, lo:hi] = ranks_from_scores(total, tgt, valid).numpy()
    return ranks


def score_weightings(
    parts: Sequence[Scorer],
    weightings: Sequence[Sequence[float]],
    dataset: SequenceDataset,
    split: str,
    *,
    n_groups: int = 5,
    exclude_history: bool = False,
) -> list[Weighting]:
    """Overall metrics and per-popularity-group NDCG@10 (groups by training popularity) of every weighting."""
    ranks = weight_grid_ranks(parts, weightings, dataset, split, exclude_history=exclude_history)
    _, targets = dataset.split(split)
    groups = popularity_groups(dataset.item_counts("train"), n_groups)
    case_groups = groups[np.asarray(targets)]
    out = []
    for weights, row in zip(weightings, ranks, strict=True):
        per_group = metrics_by_group(row, targets, groups, n_groups)
        out.append(Weighting(tuple(float(w) for w in weights), metrics_from_ranks(row),
                             [g.get("ndcg@10", 0.0) for g in per_group], case_ndcg(row), case_groups))  # fmt: skip
    return out


def case_ndcg(ranks: np.ndarray, k: int = 10) -> np.ndarray:
    """NDCG@k of each case from its 0-based rank (one relevant item: 1 / log2(rank + 2) inside the top k)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)


@dataclass(frozen=True)
class TailConstraint:
    """Eligible weightings keep `ratio` x the reference's NDCG@10 in every popularity group but the most popular,
    with a one-sided margin of `confidence` standard errors of the paired per-case difference (module doc)."""

    reference: Weighting
    ratio: float
    confidence: float = 0.0

    def lower_bounds(self, candidate: Weighting) -> list[float]:
        """Per group but the head: mean(d) - z * se(d), d_i = candidate_i - ratio * reference_i."""
        if len(candidate.case_ndcg) != len(self.reference.case_ndcg):
            raise ValueError("the candidate and the reference were scored on different cases")
        diff = candidate.case_ndcg - self.ratio * self.reference.case_ndcg
        bounds = []
        for group in range(len(candidate.group_ndcg) - 1):
            d = diff[candidate.case_groups == group]
            if len(d) == 0:
                bounds.append(0.0)
                continue
            se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
            bounds.append(float(d.mean()) - self.confidence * se)
        return bounds

    def admits(self, candidate: Weighting) -> bool:
        return all(bound >= 0.0 for bound in self.lower_bounds(candidate))


def choose(candidates: Sequence[Weighting], constraint: TailConstraint | None = None) -> Weighting | None:
    """The best overall NDCG@10 (the first of equals); with a constraint, only among the weightings it admits.
    None when no weighting qualifies."""
    eligible = [c for c in candidates if constraint is None or constraint.admits(c)]
    return max(eligible, key=lambda c: c.metrics["ndcg@10"]) if eligible else None
