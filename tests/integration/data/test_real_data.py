"""Checks against ../shared/datasets (skipped when the folder is absent)."""

import json

import pytest
from conftest import dataset_path
from semrec_worker.data import DataConfig, load_dataset


@pytest.mark.real_data
@pytest.mark.parametrize("name", ["amazon2018-scientific", "ml-100k"])
def test_kcore_matches_published_stats(name):
    path = dataset_path(name)
    expected = json.loads((path / "stats.json").read_text())
    ds = load_dataset(DataConfig(data=str(path)))
    for key in ("users", "items", "interactions"):
        assert ds.stats["before_kcore"][key] == expected["as_distributed"][key]
        assert ds.stats["after_kcore"][key] == expected["after_5core"][key]
