"""The evaluation protocol shared by every model: full ranking, sampled-100, head/tail; `jobs` holds the
evaluation job's config and `evaluate_runs`.

The protocol's names load lazily so that importing `semrec_worker.evaluation.jobs` (the CLI does, for
`--help`) does not import torch.
"""

from importlib import import_module
from typing import Any

_LAZY = {
    "METRIC_NAMES": "semrec_worker.evaluation.metrics",
    "metrics_from_ranks": "semrec_worker.evaluation.metrics",
    "ranks_from_scores": "semrec_worker.evaluation.metrics",
    "metrics_by_group": "semrec_worker.evaluation.popularity",
    "popularity_groups": "semrec_worker.evaluation.popularity",
    "EvalSettings": "semrec_worker.evaluation.protocol",
    "Evaluation": "semrec_worker.evaluation.protocol",
    "Recommender": "semrec_worker.evaluation.protocol",
    "evaluate": "semrec_worker.evaluation.protocol",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
