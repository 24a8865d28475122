"""The non-neural baselines' default settings (torch-free: the CLI reads them for its flags), chosen on
amazon2018-scientific's validation split (full ranking, NDCG@10; results/knn-sweep-amazon2018-scientific.json)."""

from __future__ import annotations

from typing import Any

SKNN_DEFAULTS: dict[str, Any] = {"k": 500}
VSKNN_DEFAULTS: dict[str, Any] = {"k": 100, "weighting": "div"}
COOC_DEFAULTS: dict[str, Any] = {"window": 10, "history": 5, "decay": 0.8, "symmetric": True}
