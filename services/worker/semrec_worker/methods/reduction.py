"""PCA to a target width, shared by LLM2X (text embedding -> model width) and LLMEmb RAT (LLM width -> d_m)."""

from __future__ import annotations

import numpy as np
from semrec.errors import UserError


def pca_reduce(matrix: np.ndarray, dim: int) -> tuple[np.ndarray, float]:
    """Project centred rows onto the top `dim` principal components.

    Returns the reduced float32 matrix and the share of variance it keeps. When `dim` exceeds what the
    data supports (rank <= min(rows, cols)), the extra columns are zero, so the width is always `dim`.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] < 2:
        raise UserError(f"PCA needs a matrix with at least 2 rows, got shape {matrix.shape}")
    if dim < 1:
        raise UserError(f"PCA width must be >= 1, got {dim}")
    centred = matrix - matrix.mean(axis=0, keepdims=True)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(dim, vt.shape[0])
    reduced = np.zeros((matrix.shape[0], dim), dtype=np.float64)
    reduced[:, :k] = centred @ vt[:k].T
    total = float((singular**2).sum())
    kept = float((singular[:k] ** 2).sum() / total) if total > 0 else 1.0
    return reduced.astype(np.float32), kept
