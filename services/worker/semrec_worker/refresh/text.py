"""Item text for refresh: the caption (title, brand, category) and its content hash (xxh3-64)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xxhash
from semrec.errors import UserError

from semrec_worker.data.text import caption
from semrec_worker.data.records import Item


def item_text(item: Item) -> str:
    return caption(item, max_tokens=None)


def content_hashes(item_ids: list[str], items: dict[str, Item]) -> np.ndarray:
    """uint64 xxh3 of each item's caption, aligned with `item_ids` (0 where the item has no text)."""
    out = np.zeros(len(item_ids), dtype=np.uint64)
    for row, item_id in enumerate(item_ids):
        item = items.get(item_id)
        if item is not None:
            out[row] = xxhash.xxh3_64_intdigest(item_text(item).encode())
    return out


def load_items(source: str | Path) -> dict[str, Item]:
    """Items from an items.jsonl[.gz] file, a dataset folder (any supported format) or a synthetic spec."""
    from semrec_worker.data.dataset import DataConfig, read_raw
    from semrec_worker.data.formats import read_common_items

    text = str(source)
    if text == "synthetic" or text.startswith("synthetic:"):
        return read_raw(DataConfig(data=text))[2]
    path = Path(text).expanduser()
    if path.is_dir():
        return read_raw(DataConfig(data=str(path)))[2]
    if not path.exists():
        raise UserError(f"{path}: items file not found (items.jsonl[.gz], a dataset folder or synthetic[:...])")
    return read_common_items(path)
