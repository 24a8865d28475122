"""Metrics by item-popularity group (LLMEmb, Figure 5): are long-tail items recommended as well as popular ones?

Items 1..n are sorted by their training interaction count (ascending; ties keep index order) and cut into
`n_groups` groups of (nearly) equal numbers of items: group 0 holds the least popular items, group
n_groups - 1 the most popular. Each test case belongs to the group of its target item, and the usual
metrics are computed per group from the cases' ranks (so a group's metric is comparable across models
evaluated on the same cases).
"""

from __future__ import annotations

import numpy as np

from semrec_worker.evaluation.metrics import metrics_from_ranks


def popularity_groups(counts: np.ndarray, n_groups: int = 5) -> np.ndarray:
    """Group of each item index (length n_items + 1, as `SequenceDataset.item_counts`); index 0 gets -1."""
    counts = np.asarray(counts)
    n_items = len(counts) - 1
    if n_groups < 1 or n_items < n_groups:
        raise ValueError(f"cannot split {n_items} items into {n_groups} popularity groups")
    order = np.argsort(counts[1:], kind="stable")
    groups = np.full(n_items + 1, -1, dtype=np.int64)
    groups[order + 1] = np.arange(n_items) * n_groups // n_items
    return groups


def metrics_by_group(
    ranks: np.ndarray, targets: np.ndarray, item_groups: np.ndarray, n_groups: int
) -> list[dict[str, float]]:
    """Per group (least popular first): the metrics of the cases whose target is in it, plus `cases`."""
    case_groups = np.asarray(item_groups)[np.asarray(targets)]
    ranks = np.asarray(ranks)
    out = []
    for group in range(n_groups):
        selected = ranks[case_groups == group]
        out.append({**metrics_from_ranks(selected), "cases": float(len(selected))})
    return out
