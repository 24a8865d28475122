"""Reading the catalogue a refresh (or a publish) works from: an items file, a dataset folder or a synthetic spec."""

from __future__ import annotations

from pathlib import Path

from semrec.errors import UserError

from semrec_worker.data.dataset import DataConfig, read_raw
from semrec_worker.data.formats import read_common_items
from semrec_worker.data.records import Item


def load_items(source: str | Path) -> dict[str, Item]:
    """Items from an items.jsonl[.gz] file, a dataset folder (any supported format) or a synthetic spec."""
    text = str(source)
    if text == "synthetic" or text.startswith("synthetic:"):
        return read_raw(DataConfig(data=text))[2]
    path = Path(text).expanduser()
    if path.is_dir():
        return read_raw(DataConfig(data=str(path)))[2]
    if not path.exists():
        raise UserError(f"{path}: items file not found (items.jsonl[.gz], a dataset folder or synthetic[:...])")
    return read_common_items(path)
