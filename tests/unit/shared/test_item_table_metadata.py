"""ItemTable metadata: validated on make, save and load; "dataset" is the name, the fingerprint has its own
field; tables saved before the schema (fingerprint in "dataset", name in "dataset_name") load with the same
meanings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from semrec.errors import UserError
from semrec.item_table import ItemTable


def test_metadata_fields_have_one_meaning_and_extras_are_kept(tmp_path):
    table = ItemTable(["a", "b"], np.eye(2), {"method": "said", "dataset": "shop", "dataset_fingerprint": "f0",
                                              "accuracy": 0.5, "settings": {"k": 4}})
    loaded = ItemTable.load(table.save(tmp_path / "t.npz"))
    assert loaded.metadata == table.metadata
    assert loaded.metadata["dataset"] == "shop" and loaded.metadata["dataset_fingerprint"] == "f0"
    assert loaded.metadata["dim"] == 2 and loaded.metadata["settings"] == {"k": 4} and "lm" not in loaded.metadata


def test_an_old_table_with_the_fingerprint_in_dataset_loads_with_its_name(tmp_path):
    path = tmp_path / "old.npz"
    old = {"method": "seqrec", "dataset": "f0", "dataset_fingerprint": "f0", "dataset_name": "shop", "dim": 2,
           "created_at": "2026-01-01T00:00:00+00:00"}
    np.savez(path, ids=np.array(["a", "b"]), vectors=np.eye(2, dtype=np.float32), metadata=np.array(json.dumps(old)))
    table = ItemTable.load(path)
    assert table.metadata["dataset"] == "shop" and table.metadata["dataset_fingerprint"] == "f0"
    assert "dataset_name" not in table.metadata and table.metadata["created_at"] == old["created_at"]


def test_invalid_metadata_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="method"):
        ItemTable(["a"], np.ones((1, 2)), {"method": 3})
    path = tmp_path / "bad.npz"
    np.savez(path, ids=np.array(["a"]), vectors=np.ones((1, 2), np.float32),
             metadata=np.array(json.dumps({"dataset": ["x"]})))
    with pytest.raises(UserError, match="dataset"):
        ItemTable.load(path)
