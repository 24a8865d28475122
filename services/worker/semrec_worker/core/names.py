"""Names the CLI, the configs and the code share (torch-free): one list each.

Method names live in the method registry (`semrec_worker.methods.registry`), beside what each method is.
"""

from __future__ import annotations

from typing import Literal, get_args

BackboneName = Literal["gru4rec", "sasrec", "bert4rec"]
BACKBONE_NAMES: tuple[str, ...] = get_args(BackboneName)

LossName = Literal["said_cosine", "full_ce", "sampled_softmax", "bce"]
LOSS_NAMES: tuple[str, ...] = get_args(LossName)

DeviceName = Literal["auto", "cpu", "cuda"]

# "learned": one trained scalar added to the score of every item already in the sequence; "learned_last": and a
# second one added to the most recent item's (docs/seqrec.md)
HistoryBiasName = Literal["none", "learned", "learned_last"]
HISTORY_BIAS_NAMES: tuple[str, ...] = get_args(HistoryBiasName)

# Ranking metrics every evaluation reports (full and sampled protocols), in report order. HR@k, the name some
# papers use, is Recall@k under leave-one-out (one target per case): `metric_name` accepts it as an alias.
METRIC_NAMES: tuple[str, ...] = ("ndcg@10", "recall@10", "mrr", "ndcg@20", "recall@20")
METRIC_ALIASES = {"hr@10": "recall@10", "hr@20": "recall@20", "hit@10": "recall@10", "hit@20": "recall@20"}


def metric_name(name: str) -> str:
    """The canonical name of a metric (case-insensitive, HR@k -> recall@k); ValueError names the choices."""
    key = name.strip().lower()
    key = METRIC_ALIASES.get(key, key)
    if key not in METRIC_NAMES:
        choices = ", ".join([*METRIC_NAMES, *METRIC_ALIASES])
        raise ValueError(f"unknown metric {name!r}: choose from {choices}")
    return key
