"""From raw records to a `SequenceDataset`: iterated k-core, chronological sequences, leave-one-out split.

Split (deterministic): for each user's chronological sequence s, the last item s[-1] is the test target
(history s[:-1]), the second last s[-2] is the validation target (history s[:-2]), and s[:-2] is training
data. Users with fewer than 3 interactions after filtering are dropped. Ties in timestamps keep file order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field
from semrec.config import JobConfig
from semrec.errors import DataError, UserError
from semrec.vocabulary import AcceptsOldNames, OldName

from semrec_worker.data import formats
from semrec_worker.data.records import Item, RawInteractions
from semrec_worker.data.synthetic import SyntheticConfig, generate

SYNTHETIC = "synthetic"


class DataConfig(AcceptsOldNames, JobConfig):
    """Which data, and how it is filtered. Inherited by every job config that reads a dataset."""

    old_names: ClassVar[dict[str, str | OldName]] = {"max_seq_len": "history_cap"}

    data: str = Field(
        SYNTHETIC,
        description="dataset folder (common, MovieLens or Amazon 2018 format) or 'synthetic[:key=value,...]'",
    )
    format: Literal["auto", "common", "movielens", "amazon"] = Field("auto", description="on-disk format")
    kcore: int = Field(5, ge=0, description="iterated k-core: drop users and items with fewer interactions")
    history_cap: int | None = Field(
        None, ge=3, description="keep only each user's newest N interactions (None: keep all)"
    )
    drop_unknown_items: bool = Field(
        False, description="drop interactions whose item is missing from the items file (default: error)"
    )


@dataclass
class SequenceDataset:
    """Users' chronological item sequences over a contiguous item index (0 is padding, items are 1..n)."""

    name: str
    item_ids: list[str]
    items: list[Item]
    user_ids: list[str]
    sequences: list[np.ndarray]
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def item_index(self) -> dict[str, int]:
        """item id -> index in 1..n_items."""
        return {item_id: i + 1 for i, item_id in enumerate(self.item_ids)}

    def train_sequences(self) -> list[np.ndarray]:
        return [s[:-2] for s in self.sequences]

    def split(self, which: Literal["valid", "test"]) -> tuple[list[np.ndarray], np.ndarray]:
        """(histories, targets) for the leave-one-out validation or test cases, one per user."""
        if which == "valid":
            return [s[:-2] for s in self.sequences], np.array([s[-2] for s in self.sequences], dtype=np.int64)
        if which == "test":
            return [s[:-1] for s in self.sequences], np.array([s[-1] for s in self.sequences], dtype=np.int64)
        raise ValueError(f"unknown split {which!r}")

    def item_counts(self, which: Literal["train", "valid", "test"] = "train") -> np.ndarray:
        """Interaction counts per item index (length n_items + 1) over what a model may see before `which`."""
        cut = {"train": -2, "valid": -2, "test": -1}[which]
        flat = np.concatenate([s[:cut] for s in self.sequences]) if self.sequences else np.zeros(0, np.int64)
        return np.bincount(flat, minlength=self.n_items + 1)

    @property
    def fingerprint(self) -> str:
        """Content hash of the filtered data (ids and sequences): tables record it to catch mix-ups."""
        h = hashlib.sha256()
        h.update("\n".join(self.item_ids).encode())
        for user, seq in zip(self.user_ids, self.sequences, strict=True):
            h.update(user.encode())
            h.update(seq.astype(np.int64).tobytes())
        return h.hexdigest()[:16]


def describe(users: np.ndarray, items: np.ndarray) -> dict[str, float]:
    n_users, n_items, n = len(np.unique(users)), len(np.unique(items)), len(users)
    return {
        "users": n_users,
        "items": n_items,
        "interactions": n,
        "avg_seq_len": round(n / max(n_users, 1), 2),
        "density": round(n / max(n_users * n_items, 1), 6),
    }


def kcore_mask(user_codes: np.ndarray, item_codes: np.ndarray, k: int) -> np.ndarray:
    """Rows kept by iterated k-core filtering (repeat until every user and item has >= k rows)."""
    keep = np.ones(len(user_codes), dtype=bool)
    if k <= 1:
        return keep
    while True:
        u_counts = np.bincount(user_codes[keep], minlength=user_codes.max() + 1)
        i_counts = np.bincount(item_codes[keep], minlength=item_codes.max() + 1)
        new_keep = keep & (u_counts[user_codes] >= k) & (i_counts[item_codes] >= k)
        if new_keep.sum() == keep.sum():
            return new_keep
        keep = new_keep


def build_dataset(name: str, raw: RawInteractions, items: dict[str, Item], config: DataConfig) -> SequenceDataset:
    known = np.array([i in items for i in raw.items.tolist()], dtype=bool)
    if not known.all():
        if not config.drop_unknown_items:
            row = int(np.flatnonzero(~known)[0])
            line = int(raw.lines[row]) if raw.lines is not None else None
            raise DataError(
                raw.source or name,
                f"item id {str(raw.items[row])!r} is not in the items file "
                f"({int((~known).sum())} such rows; --drop-unknown-items drops them)",
                line,
            )
        raw = RawInteractions(raw.users[known], raw.items[known], raw.timestamps[known], raw.source)
    before = describe(raw.users, raw.items)
    user_vocab, user_codes = np.unique(raw.users, return_inverse=True)
    item_vocab, item_codes = np.unique(raw.items, return_inverse=True)
    keep = kcore_mask(user_codes, item_codes, config.kcore)
    order = np.lexsort((np.arange(len(keep)), raw.timestamps, user_codes))
    order = order[keep[order]]
    users_sorted, items_sorted = user_codes[order], item_codes[order]
    kept_items = np.unique(items_sorted)
    new_index = np.zeros(len(item_vocab), dtype=np.int64)
    new_index[kept_items] = np.arange(1, len(kept_items) + 1)
    boundaries = np.flatnonzero(np.diff(users_sorted)) + 1
    sequences, user_ids = [], []
    for chunk_users, chunk_items in zip(
        np.split(users_sorted, boundaries), np.split(items_sorted, boundaries), strict=True
    ):
        if len(chunk_items) == 0:
            continue
        seq = new_index[chunk_items]
        if config.history_cap:
            seq = seq[-config.history_cap :]
        if len(seq) < 3:
            continue
        sequences.append(seq.astype(np.int64))
        user_ids.append(str(user_vocab[chunk_users[0]]))
    if not sequences:
        raise UserError(f"{name}: no user has 3 or more interactions after {config.kcore}-core filtering")
    item_ids = [str(item_vocab[c]) for c in kept_items]
    dataset = SequenceDataset(name, item_ids, [items[i] for i in item_ids], user_ids, sequences)
    flat_users = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])
    dataset.stats = {"before_kcore": before, "after_kcore": describe(flat_users, np.concatenate(sequences))}
    dataset.stats["kcore"] = config.kcore
    return dataset


def read_raw(config: DataConfig) -> tuple[str, RawInteractions, dict[str, Item]]:
    """(name, interactions, items) from the configured source, before any filtering."""
    if config.data == SYNTHETIC or config.data.startswith(SYNTHETIC + ":"):
        synth = SyntheticConfig.from_spec(config.data)
        raw, items = generate(synth)
        return synth.name, raw, items
    directory = Path(config.data).expanduser()
    if not directory.exists():
        raise UserError(f"{directory}: dataset folder not found (or use --data synthetic)")
    fmt = None if config.format == "auto" else config.format
    if not directory.is_dir():
        directory, fmt = formats.folder_of_file(directory, fmt)
    fmt = fmt or formats.detect_format(directory)
    raw, items = formats.READERS[fmt](directory)
    return directory.name, raw, items


def load_dataset(config: DataConfig) -> SequenceDataset:
    name, raw, items = read_raw(config)
    return build_dataset(name, raw, items, config)
