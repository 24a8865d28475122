"""The ANN index published inside a bundle: usearch HNSW over the unit item vectors (inner product = cosine).

Built by the worker at publish time (minutes for 1M items), restored by the ranker in milliseconds.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np


def usearch_index() -> Any:
    """usearch's `Index` class, loaded after ONNX Runtime where it is installed: importing onnxruntime after
    usearch segfaults in ONNX Runtime's import (usearch 2.26, onnxruntime 1.32), and both live in one
    process in the ranker, the worker's export and the benchmarks."""
    with contextlib.suppress(ImportError):
        import onnxruntime  # noqa: F401

    from usearch.index import Index

    return Index


def build_hnsw(vectors: np.ndarray, connectivity: int = 16, expansion_add: int = 128, threads: int = 0,
               progress: bool = False) -> bytes:  # fmt: skip
    """Serialised HNSW index over rows of `vectors` (keys = row numbers), built by the worker at publish."""
    index = usearch_index()(ndim=vectors.shape[1], metric="ip", dtype="f16", connectivity=connectivity,
                  expansion_add=expansion_add)  # fmt: skip
    index.add(np.arange(vectors.shape[0], dtype=np.uint64), vectors, threads=threads, log=progress)
    return bytes(index.save())
