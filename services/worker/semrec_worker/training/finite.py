"""Stop a training run loudly when its loss or its validation scores stop being numbers.

A NaN or infinite loss poisons every weight at the next optimiser step, and the run would otherwise go on
for hours, checkpoint the broken weights and report a metric computed from garbage. The loops call these
checks before the backward pass (the loss) and after scoring the validation split (the scores).
"""

from __future__ import annotations

import math

import torch


class NonFiniteError(FloatingPointError):
    """The loss or the scores of a training run became NaN or infinite; the message says where."""


def ensure_finite_loss(value: float | torch.Tensor, where: str) -> float:
    """`value` as a float; NonFiniteError naming `where` (e.g. "epoch 3, step 17") if it is NaN or +-inf."""
    number = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
    if not math.isfinite(number):
        raise NonFiniteError(
            f"training loss is {number} at {where}: stopping (lower the learning rate, enable --grad-clip, "
            "or check the inputs for NaN); the last checkpoint holds the last good weights"
        )
    return number


def ensure_finite_scores(scores: torch.Tensor, where: str, skip_columns: int = 1) -> None:
    """NonFiniteError if any score (columns from `skip_columns` on: column 0 is padding) is NaN or +-inf."""
    body = scores[:, skip_columns:]
    bad = ~torch.isfinite(body)
    if bool(bad.any()):
        n_nan = int(body.isnan().sum())
        raise NonFiniteError(
            f"the model's scores at {where} hold {int(bad.sum())} non-finite values ({n_nan} NaN) "
            f"out of {body.numel()}: its weights have diverged"
        )
