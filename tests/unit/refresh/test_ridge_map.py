"""The refresh encoders' ridge map: the penalty is chosen by cross-validation for items it was not fitted on."""

from __future__ import annotations

import numpy as np
from semrec_worker.refresh.encoders import RELATIVE_RIDGES, ridge_map


def _held_out_error(x, y, x_new, y_new, ridge):
    weights, bias = ridge_map(x, y, ridge)
    return float(np.mean((x_new @ weights + bias - y_new) ** 2))


def test_the_chosen_penalty_generalises_better_than_the_extremes_of_its_grid():
    rng = np.random.default_rng(3)
    true = rng.normal(size=(64, 8))
    x = rng.normal(size=(400, 64)) / 8.0  # unit-norm-like rows: variances ~1/64
    x_new = rng.normal(size=(2000, 64)) / 8.0
    y = x @ true + rng.normal(scale=0.6, size=(400, 8))  # few items per dimension and noisy targets
    y_new = x_new @ true
    chosen = _held_out_error(x, y, x_new, y_new, None)
    assert chosen < _held_out_error(x, y, x_new, y_new, RELATIVE_RIDGES[0])  # over-fits the noise
    assert chosen < _held_out_error(x, y, x_new, y_new, RELATIVE_RIDGES[-1])  # shrinks the signal away


def test_a_noiseless_linear_target_keeps_a_small_penalty_and_the_scale_does_not_matter():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 32))
    y = x @ rng.normal(size=(32, 5)) + 2.0
    small, small_bias = ridge_map(x, y)
    big, big_bias = ridge_map(x * 1000.0, y)  # the same features in other units: the same fit
    np.testing.assert_allclose(x @ small + small_bias, (x * 1000.0) @ big + big_bias, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(x @ small + small_bias, y, atol=0.05)
