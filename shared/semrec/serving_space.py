"""The serving space: how a run's model-space item vectors become the unit vectors a bundle serves, so that
the ranker's cosine top-k reproduces the model's own scoring.

- cosine runs (`said_cosine`): v / |v|;
- dot-product runs: the maximum-inner-product -> cosine augmentation (Bachrach et al., RecSys 2014)
      v' = [v / M, sqrt(1 - |v|^2 / M^2)],   M = the largest norm of the trained item matrix,
  with the query side [h / |h|, 0]: v' . h' = (v . h) / (M |h|), the same order as the dot product.

`ServingSpace.fit` reads M off the trained matrix once; `apply` maps any vectors with it. The export
(`semrec export onnx`, the bundle's item vectors) and every refresh encoder (new items' vectors) use this one
transform, so refreshed vectors stay comparable with trained ones. A new vector longer than M is shortened
to M first (the augmentation cannot represent it; it then scores as the catalogue's longest item would in
its direction); the trained matrix itself is reproduced exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Similarity = str  # "cosine" | "dot" (what the run's loss scores with)


@dataclass(frozen=True)
class ServingSpace:
    similarity: Similarity
    max_norm: float | None = None  # dot-product runs: M, the trained item matrix's largest norm

    @classmethod
    def fit(cls, vectors: np.ndarray, similarity: Similarity) -> ServingSpace:
        if similarity != "dot":
            return cls(similarity)
        norms = np.linalg.norm(np.asarray(vectors, dtype=np.float64), axis=1)
        return cls(similarity, max(float(norms.max()), 1e-12))

    def extra_dims(self) -> int:
        return 1 if self.similarity == "dot" else 0

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float64)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if self.similarity != "dot":
            return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
        if self.max_norm is None or self.max_norm <= 0:
            raise ValueError("dot-product runs need the trained item matrix's largest norm (max_norm)")
        m = self.max_norm
        vectors = vectors * np.minimum(1.0, m / np.maximum(norms, 1e-12))
        norms = np.minimum(norms, m)
        extra = np.sqrt(np.clip(1.0 - (norms / m) ** 2, 0.0, None))
        return np.concatenate([vectors / m, extra], axis=1).astype(np.float32)

    def to_dict(self, model_dim: int) -> dict[str, Any]:
        """What a refresh encoder records (`similarity`, `max_norm`, `model_dim`, served `dim`)."""
        return {"similarity": self.similarity, "max_norm": self.max_norm, "model_dim": model_dim,
                "dim": model_dim + self.extra_dims()}

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> ServingSpace:
        return cls(spec["similarity"], spec.get("max_norm"))
