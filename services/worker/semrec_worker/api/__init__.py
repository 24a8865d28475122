"""The Python API: train from pandas DataFrames, load a trained run, recommend, all in-process on CPU.

    import pandas as pd
    from semrec_worker.api import Dataset, Recommender, train

    dataset = Dataset.from_frame(interactions_df, items_df)      # user_id, item_id, timestamp / item_id, title
    model = train(dataset, "runs/shop", epochs=20)                # the same trainer as `semrec train seqrec`
    model = Recommender.from_run("runs/shop")                     # later, elsewhere
    model.recommend(["u1", "u2"], k=10)                           # DataFrame user, rank, item_id, score, title
    model.recommend(histories=[["i3", "i7"]], k=10)
    model.similar_items(["i3"], k=5)

See docs/python-api.md. Names load lazily: importing this package does not import torch.
"""

from importlib import import_module
from typing import Any

_LAZY = {
    "Dataset": "semrec_worker.api.dataset",
    "Recommender": "semrec_worker.api.recommender",
    "train": "semrec_worker.api.trainer",
}

__all__ = ["Dataset", "Recommender", "train"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
