"""The evaluation protocol shared by every model: full ranking, sampled-100, head/tail."""

from semrec_worker.evaluation.metrics import METRIC_NAMES, metrics_from_ranks, ranks_from_scores
from semrec_worker.evaluation.popularity import metrics_by_group, popularity_groups
from semrec_worker.evaluation.protocol import EvalSettings, Evaluation, Recommender, evaluate

__all__ = [
    "METRIC_NAMES",
    "EvalSettings",
    "Evaluation",
    "Recommender",
    "evaluate",
    "metrics_by_group",
    "metrics_from_ranks",
    "popularity_groups",
    "ranks_from_scores",
]
