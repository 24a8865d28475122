"""Held-out cosine of the refresh text map for items it was not fitted on, per relative ridge penalty.

    python tools/text_map_heldout.py TEXT_EMBEDDINGS.npz RUN_DIR [--test-fraction 0.2]

TEXT_EMBEDDINGS.npz: `vectors` (items x width) in the run's dataset order (e.g. MiniLM of the captions);
RUN_DIR: a finished seqrec run (its trained `item_embedding.weight` rows are the targets, L2-normalised).
Prints the held-out and in-sample cosine per penalty, the item-count penalty the refresh map used before,
and the penalty generalised cross-validation chooses (`ridge_map(..., None)`).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from semrec_worker.refresh.encoders import RELATIVE_RIDGES, ridge_map


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("embeddings")
    parser.add_argument("run")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    args = parser.parse_args()
    x = np.load(args.embeddings)["vectors"].astype(np.float64)
    state = torch.load(f"{args.run}/model.pt", map_location="cpu", weights_only=True)
    y = state["item_embedding.weight"].numpy()[1:].astype(np.float64)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    order = np.random.default_rng(0).permutation(len(x))
    cut = int(len(x) * (1 - args.test_fraction))
    fit, held = order[:cut], order[cut:]
    centred = x[fit] - x[fit].mean(0)
    scale = float(np.einsum("ij,ij->", centred, centred)) / x.shape[1]
    for label, ridge in [("item-count 1e-2 x n", 1e-2 * len(fit) / scale), *[(str(r), r) for r in RELATIVE_RIDGES],
                         ("chosen (GCV)", None)]:
        weights, bias = ridge_map(x[fit], y[fit], ridge)
        print(f"ridge {label:>20}: held-out cosine {_cosine(x[held] @ weights + bias, y[held]):.4f}, "
              f"in-sample {_cosine(x[fit] @ weights + bias, y[fit]):.4f}")


if __name__ == "__main__":
    main()
