"""Most-popular baseline: every user gets items ranked by their training interaction count."""

from __future__ import annotations

import numpy as np
import torch

from semrec_worker.data.dataset import SequenceDataset


class PopularityRecommender:
    """Scores = interaction counts over what precedes the evaluated split (train for valid, train+valid for test)."""

    name = "popularity"

    def __init__(self, counts: np.ndarray) -> None:
        self.counts = torch.as_tensor(counts, dtype=torch.float32)

    @classmethod
    def fit(cls, dataset: SequenceDataset, split: str = "test") -> PopularityRecommender:
        return cls(dataset.item_counts("test" if split == "test" else "train"))

    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        return self.counts.expand(len(histories), -1)


def grid_reference(dataset: SequenceDataset, grid: object) -> tuple[PopularityRecommender, str, dict]:
    """The quality grid's popularity cell (nothing to set)."""
    return PopularityRecommender.fit(dataset, "test"), "popularity", {}
