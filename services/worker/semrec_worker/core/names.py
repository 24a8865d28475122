"""Names the CLI, the configs and the code share (torch-free): one list each.

Method names live in the method registry (`semrec_worker.methods.registry`), beside what each method is.
"""

from __future__ import annotations

from typing import Literal, get_args

BackboneName = Literal["gru4rec", "sasrec", "bert4rec"]
BACKBONE_NAMES: tuple[str, ...] = get_args(BackboneName)

LossName = Literal["said_cosine", "full_ce", "sampled_softmax", "bce"]
LOSS_NAMES: tuple[str, ...] = get_args(LossName)

DeviceName = Literal["auto", "cpu", "cuda"]
