"""Training windows: every position of every training sequence predicts its next item.

Each training sequence s[:-2] (the last two items are the validation and test targets) is cut from its end
into windows of at most max_len + 1 items, so a sequence longer than the model's history still contributes
every one of its targets: windows s[e - max_len - 1 : e] for e = n, n - max_len, ... The windows' targets are
disjoint and cover s[1:]. A causal backbone trains on all positions of a window in one pass (per-prefix
samples); BERT4Rec masks items of the last max_len.

`WindowBatches` shuffles windows with a per-epoch seed, groups windows of similar length into the same batch
(within pools of `pool_batches` batches, so the order stays random), and yields batches trimmed to their
longest window: on short-sequence data (Amazon: 7 items on average, max_len 50) this skips most of the
padding a fixed-width batch would push through the encoder. In data-parallel training every process draws
the same global batch and keeps its share of rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from semrec_worker.backbones.base import left_pad

AUGMENTATIONS = ("none", "reverse")


def augmented(sequences: list[np.ndarray], augment: str) -> list[np.ndarray]:
    """The training sequences an epoch draws windows from: the sequences themselves and, with "reverse", each
    one reversed too (its targets are the items before each position). Only training parts come in (the
    caller passes `dataset.train_sequences()`), so no validation or test item reaches training."""
    if augment == "none":
        return list(sequences)
    if augment == "reverse":
        return list(sequences) + [seq[::-1].copy() for seq in sequences if len(seq) >= 2]
    raise ValueError(f"unknown augmentation {augment!r} (choose from {', '.join(AUGMENTATIONS)})")


def training_windows(sequences: list[np.ndarray], max_len: int) -> list[np.ndarray]:
    windows = []
    for seq in sequences:
        end = len(seq)
        while end >= 2:
            windows.append(seq[max(0, end - max_len - 1) : end])
            end -= max_len
    return windows


@dataclass
class Batch:
    windows: torch.Tensor  # [B, W] left-padded item indices
    noise: torch.Tensor  # [B, W] uniform [0, 1), for the backbone's random choices


class WindowBatches:
    def __init__(
        self, sequences: list[np.ndarray], max_len: int, batch_size: int, seed: int, pool_batches: int = 50
    ) -> None:
        windows = training_windows(sequences, max_len)
        if not windows:
            raise ValueError("no training sequence has two or more items")
        self.padded = left_pad(windows, max_len + 1)
        self.lengths = torch.as_tensor([len(w) for w in windows])
        self.n_targets = int((self.lengths - 1).sum())
        self.batch_size = batch_size
        self.seed = seed
        self.pool_batches = pool_batches

    def __len__(self) -> int:
        return -(-len(self.padded) // self.batch_size)

    def epoch(self, epoch: int, rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.padded), generator=generator)
        batches = []
        pool = self.batch_size * self.pool_batches
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            batches += [chunk[lo : lo + self.batch_size] for lo in range(0, len(chunk), self.batch_size)]
        for index in torch.randperm(len(batches), generator=generator).tolist():
            rows = batches[index]
            width = int(self.lengths[rows].max())
            windows = self.padded[rows, -width:]
            noise = torch.rand(windows.shape, generator=generator)
            if len(rows) < world_size:
                continue  # every process must take part in each step; a tiny last batch is skipped
            yield Batch(windows[rank::world_size], noise[rank::world_size])
