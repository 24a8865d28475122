"""Captions tokenised once, and length-bucketed batches (little padding, no per-step tokenising)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from semrec_worker.data.records import Item
from semrec_worker.data.text import caption


@dataclass
class TokenizedCaptions:
    """Token ids of each item's caption (capped, EOS appended) and the caption texts the ids decode to."""

    ids: list[list[int]]
    texts: list[str]
    pad_id: int

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(t) for t in self.ids], dtype=np.int64)

    def batch(self, rows: Sequence[int], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """(captions [B, T] right-padded, mask [B, T]) for these item rows."""
        width = max(len(self.ids[r]) for r in rows)
        tokens = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, r in enumerate(rows):
            ids = self.ids[r]
            tokens[i, : len(ids)] = torch.as_tensor(ids)
            mask[i, : len(ids)] = True
        return tokens.to(device), mask.to(device)


def tokenize_captions(items: Sequence[Item], tokenizer, fields: Sequence[str], max_tokens: int) -> TokenizedCaptions:
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    texts = [caption(item, fields=tuple(fields), max_tokens=None) for item in items]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    ids, shown = [], []
    for tokens in encoded:
        tokens = list(tokens[:max_tokens]) or [eos]
        ids.append(tokens + [eos])
        shown.append(tokenizer.decode(tokens, skip_special_tokens=True).strip())
    return TokenizedCaptions(ids, shown, pad)


def length_buckets(lengths: np.ndarray, rows: np.ndarray, batch_size: int, seed: int) -> list[np.ndarray]:
    """Batches of items of similar caption length, in a random order (ties shuffled, so batches vary)."""
    rng = np.random.default_rng(seed)
    rows = np.asarray(rows, dtype=np.int64)
    order = np.lexsort((rng.random(len(rows)), lengths[rows]))
    batches = [rows[order[i : i + batch_size]] for i in range(0, len(rows), batch_size)]
    rng.shuffle(batches)
    return batches
