"""The ANN index published inside a bundle: usearch HNSW over the unit item vectors (inner product = cosine).

Built by the worker at publish time (minutes for 1M items), restored by the ranker in milliseconds.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import numpy as np


def usearch_index() -> Any:
    """usearch's `Index` class, loaded after ONNX Runtime where it is installed: importing onnxruntime after
    usearch segfaults in ONNX Runtime's import (usearch 2.26, onnxruntime 1.32), and both live in one
    process in the ranker, the worker's export and the benchmarks."""
    with contextlib.suppress(ImportError):
        import onnxruntime  # noqa: F401

    from usearch.index import Index

    return Index


AnnDtype = Literal["f16", "i8"]
"""How the index stores its vectors: f16, or i8 (unit vectors scaled by 127), which halves the rows a search
reads and lets the distance kernels use integer dot products (VNNI where the CPU has it). The ranker rescores
the index's hits with the float32 vectors either way, so the dtype changes which items are found, never their
scores or order."""

ANN_DTYPES: tuple[str, ...] = ("f16", "i8")


def build_hnsw(vectors: np.ndarray, connectivity: int = 16, expansion_add: int = 128, threads: int = 0,
               progress: bool = False, dtype: AnnDtype = "f16") -> bytes:  # fmt: skip
    """Serialised HNSW index over rows of `vectors` (keys = row numbers), built by the worker at publish."""
    if dtype not in ANN_DTYPES:
        raise ValueError(f"ANN dtype {dtype!r}: use one of {', '.join(ANN_DTYPES)}")
    index = usearch_index()(ndim=vectors.shape[1], metric="ip", dtype=dtype, connectivity=connectivity,
                  expansion_add=expansion_add)  # fmt: skip
    index.add(np.arange(vectors.shape[0], dtype=np.uint64), vectors, threads=threads, log=progress)
    return bytes(index.save())
