"""`Dataset`: interactions (+ items) filtered and split exactly as the CLI does, from a DataFrame or a path."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semrec_worker.data.dataset import DataConfig, SequenceDataset, build_dataset, load_dataset
from semrec_worker.data.frames import interactions_from_frame, items_from_frame

if TYPE_CHECKING:
    import pandas as pd


class Dataset:
    """Users' chronological item sequences after k-core filtering, with the leave-one-out split.

    `sequences` is the `SequenceDataset` every trainer and the evaluation protocol take; `settings` the
    data settings (`DataConfig`) that produced it; `source` the folder or synthetic spec it was read from
    (None when it was built in memory, e.g. from DataFrames).
    """

    def __init__(self, sequences: SequenceDataset, settings: DataConfig, source: str | None = None) -> None:
        self.sequences = sequences
        self.settings = settings
        self.source = source

    @classmethod
    def from_frame(
        cls,
        interactions: pd.DataFrame,
        items: pd.DataFrame | None = None,
        *,
        name: str = "dataframe",
        kcore: int = 5,
        history_cap: int | None = None,
        drop_unknown_items: bool = False,
        user_col: str = "user_id",
        item_col: str = "item_id",
        time_col: str = "timestamp",
    ) -> Dataset:
        """From an interactions frame (`user_id`, `item_id`, optional `timestamp`: numbers, datetimes or
        ISO-8601 strings) and an optional items frame (`item_id`, `title`, `brand`, `categories`, extras)."""
        settings = DataConfig(data=name, kcore=kcore, history_cap=history_cap, drop_unknown_items=drop_unknown_items)
        raw = interactions_from_frame(interactions, user_col, item_col, time_col)
        item_records = items_from_frame(items, raw.items, item_col)
        return cls(build_dataset(name, raw, item_records, settings), settings)

    @classmethod
    def from_path(cls, data: str | Path, **settings: Any) -> Dataset:
        """From a dataset folder (or its interactions file) or `synthetic[:...]`; `settings` are the data
        flags of the CLI (`kcore`, `history_cap`, `format`, `drop_unknown_items`)."""
        config = DataConfig(data=str(data), **settings)
        return cls(load_dataset(config), config, source=str(data))

    @property
    def name(self) -> str:
        return self.sequences.name

    @property
    def n_users(self) -> int:
        return self.sequences.n_users

    @property
    def n_items(self) -> int:
        return self.sequences.n_items

    @property
    def stats(self) -> dict[str, Any]:
        return self.sequences.stats

    def histories(self) -> dict[str, list[str]]:
        """user id -> the user's whole chronological history (item ids), test item included."""
        ids = self.sequences.item_ids
        return {u: [ids[i - 1] for i in s.tolist()] for u, s in zip(self.sequences.user_ids, self.sequences.sequences, strict=True)}

    def save(self, directory: str | Path) -> Path:
        """Write the filtered data in the common format (`interactions.csv.gz`, `items.jsonl.gz`), so the CLI
        can read it (`--data DIRECTORY`) and rebuilds exactly this dataset from it. Timestamps become each
        event's position in its user's sequence."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with gzip.open(directory / "interactions.csv.gz", "wt", encoding="utf-8", newline="") as fh:
            fh.write("user_id,item_id,timestamp\n")
            for user, items in self.histories().items():
                fh.writelines(f"{_csv(user)},{_csv(item)},{t}\n" for t, item in enumerate(items))
        with gzip.open(directory / "items.jsonl.gz", "wt", encoding="utf-8") as fh:
            fh.writelines(json.dumps(item.to_json(), default=str) + "\n" for item in self.sequences.items)
        return directory

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}: {self.n_users} users, {self.n_items} items)"


def _csv(value: str) -> str:
    if any(c in value for c in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value
