"""`semrec bench seqrec-speed` times each backbone x item-layer mode in its own training process."""

import json

import numpy as np
from semrec.cli import build_app
from semrec.item_table import ItemTable
from semrec_worker.data import DataConfig, load_dataset
from typer.testing import CliRunner

DATA = "synthetic:users=60,items=30,avg_len=6,seed=3"


def test_one_row_per_mode_with_its_item_layer_and_seconds(tmp_path):
    dataset = load_dataset(DataConfig(data=DATA))
    vectors = np.random.default_rng(0).normal(size=(dataset.n_items, 24)).astype(np.float32)
    table = ItemTable(list(dataset.item_ids), vectors, {"method": "text"}).save(tmp_path / "table.npz")
    out = tmp_path / "speed.json"
    result = CliRunner().invoke(build_app(), [
        "bench", "seqrec-speed", "--data", DATA, "--backbones", "gru4rec", "--loss", "said_cosine",
        "--init", str(table), "--item-layers", "init,frozen,dual", "--fusion", "gate", "--epochs", "1",
        "--dim", "8", "--max-len", "6", "--runs-dir", str(tmp_path / "runs"), "--results", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["runs"]
    assert [r["config"]["item_layer"] for r in rows] == ["init", "frozen", "dual"]
    for row in rows:
        assert row["protocol"] == "train-speed" and row["metrics"]["s_per_epoch"] > 0
        assert row["metrics"]["peak_rss_mib"] > 0 and row["metrics"]["epochs"] == 1
    trained = sorted((tmp_path / "runs").iterdir())
    saved = [json.loads((d / "config.json").read_text())["config"]["model"]["items"] for d in trained]
    assert sorted(s["item_layer"] for s in saved) == ["dual", "frozen", "init"]
    assert next(s for s in saved if s["item_layer"] == "dual")["fusion"] == "gate"
    # each mode built its own item layer (adapter, second view): the parameter counts differ
    params = [r["metrics"]["parameters"] for r in rows]
    assert len(set(params)) == 3, params


def test_frozen_or_dual_without_a_table_exits_2(tmp_path):
    result = CliRunner().invoke(build_app(), ["bench", "seqrec-speed", "--data", DATA, "--item-layers", "dual",
                                              "--results", str(tmp_path / "x.json")])  # fmt: skip
    assert result.exit_code == 2 and "--init TABLE" in result.output
