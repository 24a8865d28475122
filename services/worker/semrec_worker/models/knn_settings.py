"""The non-neural baselines' settings (torch-free: the CLI reads them for its flags).

The defaults were chosen on amazon2018-scientific's validation split (full ranking, NDCG@10;
results/knn-sweep-amazon2018-scientific.json). A dataset with its own validation sweep has its choice in
`TUNED` (results/knn-sweep-<dataset>.json); the quality grid's baseline cells take it from there, and every
other dataset (ml-100k among them) takes the defaults.
"""

from __future__ import annotations

from typing import Any

SKNN_DEFAULTS: dict[str, Any] = {"k": 500}
VSKNN_DEFAULTS: dict[str, Any] = {"k": 100, "weighting": "div"}
COOC_DEFAULTS: dict[str, Any] = {"window": 10, "history": 5, "decay": 0.8, "symmetric": True}
DEFAULTS: dict[str, dict[str, Any]] = {"sknn": SKNN_DEFAULTS, "vsknn": VSKNN_DEFAULTS, "cooc": COOC_DEFAULTS}

# dataset name -> method -> the setting chosen on that dataset's validation split
TUNED: dict[str, dict[str, dict[str, Any]]] = {
    # results/knn-sweep-amazon2018-videogames.json: four co-occurrence settings, one each of SKNN / V-SKNN (the
    # Scientific choices; each SKNN evaluation over 50k sessions takes minutes on one core); the best are
    # Scientific's again
    "amazon2018-videogames": {"sknn": SKNN_DEFAULTS, "vsknn": VSKNN_DEFAULTS, "cooc": COOC_DEFAULTS},
}


def settings_for(method: str, dataset_name: str) -> dict[str, Any]:
    """The settings of `method` (sknn, vsknn or cooc) on `dataset_name`: its tuned choice, else the defaults."""
    return dict(TUNED.get(dataset_name, {}).get(method, DEFAULTS[method]))
