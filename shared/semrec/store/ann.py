"""The ANN index published inside a bundle: usearch HNSW over the unit item vectors (inner product = cosine).

Built by the worker at publish time (minutes for 1M items), restored by the ranker in milliseconds.
"""

from __future__ import annotations

import numpy as np


def build_hnsw(vectors: np.ndarray, connectivity: int = 16, expansion_add: int = 128, threads: int = 0,
               progress: bool = False) -> bytes:  # fmt: skip
    """Serialised HNSW index over rows of `vectors` (keys = row numbers), built by the worker at publish."""
    from usearch.index import Index

    index = Index(ndim=vectors.shape[1], metric="ip", dtype="f16", connectivity=connectivity,
                  expansion_add=expansion_add)  # fmt: skip
    index.add(np.arange(vectors.shape[0], dtype=np.uint64), vectors, threads=threads, log=progress)
    return bytes(index.save())
