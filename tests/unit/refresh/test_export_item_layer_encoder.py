"""`semrec export refresh-encoder` rebuilds the `item-layer` encoder of a frozen/dual run and refuses others."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from semrec.cli import build_app
from semrec.item_table import ItemTable
from semrec_worker.refresh.item_layer import save_item_layer_encoder
from semrec_worker.training import SeqRecConfig, train_seqrec
from typer.testing import CliRunner

DATA = "synthetic:users=300,items=200,avg_len=10,seed=1"


def _run(tmp_path, tiny_synthetic, item_layer: str):
    rng = np.random.default_rng(0)
    table = ItemTable(tiny_synthetic.item_ids, rng.normal(size=(tiny_synthetic.n_items, 24)).astype(np.float32),
                      {"method": "fake-llm"})
    table.save(tmp_path / "t.npz")
    run = tmp_path / item_layer
    config = SeqRecConfig(data=DATA, out=run, backbone="sasrec", dim=16, max_len=12, epochs=1, threads=1,
                          batch_size=64, init=str(tmp_path / "t.npz"), item_layer=item_layer, fusion="gate",
                          refresh_text_encoder="hashing", refresh_neighbours=2)
    train_seqrec(config, dataset=tiny_synthetic)
    return run


@pytest.mark.parametrize("kind_flag", [[], ["--kind", "item-layer"]])
def test_the_item_layer_encoder_of_a_dual_run_is_rebuilt_as_export_wrote_it(tmp_path, tiny_synthetic, kind_flag):
    run = _run(tmp_path, tiny_synthetic, "dual")
    directory = save_item_layer_encoder(run)
    before = dict(np.load(directory / "weights.npz"))
    spec = json.loads((directory / "encoder.json").read_text())
    shutil.rmtree(directory)
    result = CliRunner().invoke(build_app(), ["export", "refresh-encoder", "--run", str(run), *kind_flag])
    assert result.exit_code == 0, result.output
    assert json.loads((directory / "encoder.json").read_text()) == spec
    after = dict(np.load(directory / "weights.npz"))
    assert sorted(after) == sorted(before)
    for key, value in before.items():
        np.testing.assert_allclose(after[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_item_layer_kind_on_an_init_run_exits_2_with_a_message(tmp_path, tiny_synthetic):
    run = _run(tmp_path, tiny_synthetic, "init")
    result = CliRunner().invoke(build_app(), ["export", "refresh-encoder", "--run", str(run), "--kind", "item-layer"])
    assert result.exit_code == 2
    assert "--item-layer frozen|dual" in result.output
    assert not (run / "refresh_encoder").exists()
