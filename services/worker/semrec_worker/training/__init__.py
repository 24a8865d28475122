"""Training of sequential recommenders: per-prefix windows, early stopping, checkpoints, DDP via torchrun.

The trainer's names load lazily so that importing `SeqRecConfig` (the CLI does, for `--help`) does not
import torch.
"""

from importlib import import_module
from typing import Any

from semrec_worker.training.config import SeqRecConfig

_LAZY = {
    "SeqRecRecommender": "semrec_worker.training.recommender",
    "TrainResult": "semrec_worker.training.trainer",
    "train_seqrec": "semrec_worker.training.trainer",
}

__all__ = ["SeqRecConfig", "SeqRecRecommender", "TrainResult", "train_seqrec"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
