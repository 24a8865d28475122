"""The evaluation protocol shared by every model: full ranking, sampled-100, head/tail."""

from semrec_worker.evaluation.metrics import METRIC_NAMES, metrics_from_ranks, ranks_from_scores
from semrec_worker.evaluation.protocol import EvalSettings, Evaluation, Recommender, evaluate

__all__ = [
    "METRIC_NAMES",
    "EvalSettings",
    "Evaluation",
    "Recommender",
    "evaluate",
    "metrics_from_ranks",
    "ranks_from_scores",
]
