"""A tiny example method for the registry test: item = the character 3-gram hashing vector of its caption."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from semrec.item_table import ItemTable
from semrec_worker.data.dataset import load_dataset
from semrec_worker.data.text import caption
from semrec_worker.methods.base import RunDirConfig, run_dir, save_table
from semrec_worker.refresh.encoders import HashingTextEncoder


class CaptionHashConfig(RunDirConfig):
    width: int = Field(32, ge=2, description="hashing buckets = table width")


def build_table(config: CaptionHashConfig) -> Path:
    dataset = load_dataset(config)
    vectors = HashingTextEncoder(config.width).embed([caption(item) for item in dataset.items])
    table = ItemTable(dataset.item_ids, vectors, {"method": "caption-hash", "dataset": dataset.name})
    return save_table(table, config, run_dir(config, "caption-hash", dataset))
