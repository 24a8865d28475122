"""PCA to a target width, shared by LLM2X (text embedding -> model width) and LLMEmb RAT (LLM width -> d_m).

`fit_pca` keeps the fitted mean and components so the same projection can be applied to rows that arrive
later (the refresh job's new items); `pca_reduce` is fit + transform of one matrix.

Why numpy's SVD and not scikit-learn's `PCA`: the two give the same components up to sign (max abs
difference 0.0 on a 2000 x 384 matrix, tests/unit/core/test_library_helpers.py), but scikit-learn flips signs to its
own convention (about half the components there). A flipped column of an initial item table changes the
seeded training run that starts from it, so every recorded stage-2 number (LLM2X, LH, SAID, LLMEmb) would
stop reproducing from its config.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from semrec.errors import UserError


@dataclass
class PCAFit:
    """x -> (x - mean) @ components^T, zero-padded to `dim` columns. components: [k <= dim, input width].

    With `stds` (PCA whitening, `whitened`), each kept component is also divided by its standard deviation
    over the fitted rows, so every kept direction has unit variance."""

    mean: np.ndarray
    components: np.ndarray
    dim: int
    variance_kept: float
    stds: np.ndarray | None = None

    def transform(self, matrix: np.ndarray) -> np.ndarray:
        centred = np.asarray(matrix, dtype=np.float64) - self.mean
        out = np.zeros((centred.shape[0], self.dim), dtype=np.float64)
        projected = centred @ self.components.T
        out[:, : self.components.shape[0]] = projected if self.stds is None else projected / self.stds
        return out.astype(np.float32)

    def whitened(self, matrix: np.ndarray) -> PCAFit:
        """This fit with each component divided by its standard deviation over `matrix` (the fitted rows);
        components with no variance are dropped (their columns stay zero)."""
        projected = (np.asarray(matrix, dtype=np.float64) - self.mean) @ self.components.T
        stds = projected.std(axis=0, ddof=1)  # fit_pca refuses fewer than 2 rows
        keep = stds > 1e-10 * max(float(stds.max(initial=0.0)), 1e-30)
        return PCAFit(self.mean, self.components[keep], self.dim, self.variance_kept, stds[keep])

    def arrays(self, prefix: str = "pca_") -> dict[str, np.ndarray]:
        arrays = {f"{prefix}mean": self.mean, f"{prefix}components": self.components,
                  f"{prefix}dim": np.array(self.dim), f"{prefix}variance_kept": np.array(self.variance_kept)}
        if self.stds is not None:
            arrays[f"{prefix}stds"] = self.stds
        return arrays

    @classmethod
    def from_arrays(cls, data, prefix: str = "pca_") -> PCAFit:
        stds = data[f"{prefix}stds"] if f"{prefix}stds" in data else None
        return cls(np.asarray(data[f"{prefix}mean"], np.float64), np.asarray(data[f"{prefix}components"], np.float64),
                   int(data[f"{prefix}dim"]), float(data[f"{prefix}variance_kept"]),
                   None if stds is None else np.asarray(stds, np.float64))


def fit_pca(matrix: np.ndarray, dim: int) -> PCAFit:
    """The top `dim` principal components of the centred rows (fewer when the data's rank is lower)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] < 2:
        raise UserError(f"PCA needs a matrix with at least 2 rows, got shape {matrix.shape}")
    if dim < 1:
        raise UserError(f"PCA width must be >= 1, got {dim}")
    mean = matrix.mean(axis=0, keepdims=True)
    _, singular, vt = np.linalg.svd(matrix - mean, full_matrices=False)
    k = min(dim, vt.shape[0])
    total = float((singular**2).sum())
    kept = float((singular[:k] ** 2).sum() / total) if total > 0 else 1.0
    return PCAFit(mean, vt[:k], dim, kept)


def pca_reduce(matrix: np.ndarray, dim: int) -> tuple[np.ndarray, float]:
    """Project centred rows onto the top `dim` principal components.

    Returns the reduced float32 matrix and the share of variance it keeps. When `dim` exceeds what the
    data supports (rank <= min(rows, cols)), the extra columns are zero, so the width is always `dim`.
    """
    fit = fit_pca(matrix, dim)
    return fit.transform(matrix), fit.variance_kept
