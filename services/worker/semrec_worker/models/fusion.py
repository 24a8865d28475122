"""Late fusion of several recommenders' scores (a hybrid of a trained model with non-neural partners).

For a history h, parts m_1..m_P with weights w_p, and s_p(i) the score part p gives item i:

    z_p(i) = (s_p(i) - mean_j s_p(j)) / std_j s_p(j)      mean and std over the items part p can score
    score(i) = sum_p w_p z_p(i)

Z-scoring per history puts parts of different scales (cosines, co-occurrence counts) on one scale, so one
weight grid fits every partner. An item that a part cannot score (-inf) stays -inf; padding (index 0) is never
recommended. Scores are float64 so that a part's own tie-break (the baselines' 1e-6 x popularity) survives.

A part may have a negative weight. With the popularity prior (`PopularityPrior`, s(i) = log(1 + n_i), n_i the
item's interactions before the split) a negative weight is a popularity penalty: it moves the fused ranking
toward less popular items by the same amount for every history, the additive, z-space form of popularity
de-biasing (cf. Zhang et al., SIGIR'21, who divide the score by a power of popularity instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch


class Scorer(Protocol):
    def score(self, histories: list[np.ndarray]) -> torch.Tensor: ...


def standardised(scores: torch.Tensor) -> torch.Tensor:
    """Each row z-scored over its finite entries (column 0, padding, excluded); non-finite entries -> -inf."""
    scores = torch.as_tensor(scores).to(torch.float64)
    finite = torch.isfinite(scores)
    finite[:, 0] = False
    count = finite.sum(1, keepdim=True).clamp(min=1)
    values = torch.where(finite, scores, torch.zeros_like(scores))
    mean = values.sum(1, keepdim=True) / count
    var = (torch.where(finite, scores - mean, torch.zeros_like(scores)) ** 2).sum(1, keepdim=True) / count
    z = (scores - mean) / var.sqrt().clamp(min=1e-12)
    return torch.where(finite, z, torch.full_like(z, -torch.inf))


class ScoreFusion:
    """A recommender whose scores are the weighted sum of its parts' z-scored scores (module docstring)."""

    name = "fusion"

    def __init__(self, parts: Sequence[tuple[Scorer, float]]) -> None:
        if not parts:
            raise ValueError("score fusion needs at least one part")
        self.parts = [(model, float(weight)) for model, weight in parts]

    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        total: torch.Tensor | None = None
        for model, weight in self.parts:
            if weight == 0 and total is not None:
                continue
            z = standardised(model.score(histories))
            # a zero weight still marks what its part cannot score (-inf), never what it scores
            part = torch.where(torch.isfinite(z), weight * z, z)
            total = part if total is None else total + part
        assert total is not None
        total[:, 0] = -torch.inf
        return total


class HistoryFloor:
    """A part whose score for the history's own items is its lowest score for that history.

    Text similarity gives the last item of a history a cosine of 1 with itself; as a fusion partner it would
    vote for what the user already has. This keeps those items rankable (the history stays in the candidate
    set, as the shared protocol requires) but gives them no vote.
    """

    def __init__(self, model: Scorer) -> None:
        self.model = model

    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        scores = torch.as_tensor(self.model.score(histories)).to(torch.float64).clone()
        finite = torch.isfinite(scores)
        finite[:, 0] = False
        floor = torch.where(finite, scores, torch.full_like(scores, torch.inf)).min(1).values
        for row, history in enumerate(histories):
            if len(history):
                scores[row, torch.as_tensor(np.asarray(history, dtype=np.int64))] = floor[row]
        return scores


class PopularityPrior:
    """A part that scores every item by log(1 + its interaction count before the split), whatever the history.

    Alone it is the popularity baseline's order; as a fusion partner with a negative weight it is a popularity
    penalty (module docstring). The counts are those a model may see before the split (`item_counts(split)`).
    """

    def __init__(self, counts: np.ndarray) -> None:
        self.log_counts = torch.log1p(torch.as_tensor(np.asarray(counts), dtype=torch.float64))

    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        return self.log_counts.expand(len(histories), -1).clone()
