"""LLM2BERT4Rec: the LLM2X table at BERT4Rec's width initialises a BERT4Rec's item embeddings, and the quality grid
trains and reports its cells beside random-init BERT4Rec through the method registry."""

from __future__ import annotations

import numpy as np
from semrec.item_table import ItemTable
from semrec.results import read_results
from semrec_worker.data import load_dataset
from semrec_worker.experiments import grid
from semrec_worker.experiments.config import QualityConfig
from semrec_worker.training.config import SeqRecConfig
from semrec_worker.training.trainer import build_model

DATA = "synthetic:users=300,items=200,avg_len=10,seed=1"


def test_a_one_epoch_cell_beside_random_bert4rec(tmp_path):
    config = QualityConfig(data=DATA, methods=["random", "llm2bert4rec"], backbones=["bert4rec"], seeds=[0], epochs=1,
                           dim=16, text_encoder="tiny", isolate=False, runs_dir=tmp_path / "runs",
                           out=tmp_path / "quality.json")  # fmt: skip
    dataset = load_dataset(config)
    cells = grid.run_grid(config, dataset, tmp_path / "runs")
    assert [(c.method, c.backbone, c.status) for c in cells] == [
        ("random", "bert4rec", "trained"), ("llm2bert4rec", "bert4rec", "trained"),
    ]  # fmt: skip
    runs = read_results(tmp_path / "runs" / "llm2bert4rec" / "bert4rec" / "seed0" / "results.json").runs
    assert {r.protocol for r in runs} == {"full", "sampled100"}
    assert all(r.method == "llm2bert4rec" and r.backbone == "bert4rec" and r.config["epochs_run"] == 1 for r in runs)

    table = ItemTable.load(tmp_path / "runs" / "llm2bert4rec" / "table")
    assert table.dim == 16  # PCA'd to the backbone's width, once, in the table build
    assert table.metadata["method"] == "llm2bert4rec" and table.metadata["backbone"] == "bert4rec"
    assert table.metadata["pca_variance_kept"] < 1.0  # the tiny encoder is wider than 16: PCA did reduce it
    # the BERT4Rec of such a cell starts from the table's rows (up to the init's scaling), not from random
    job = SeqRecConfig(data=DATA, backbone="bert4rec", dim=16, init=str(tmp_path / "runs" / "llm2bert4rec" / "table"),
                       out=tmp_path / "unused")
    model, _, method = build_model(job, dataset, None)
    weights = model.item_embedding.weight.detach().numpy()[1:]
    aligned, _ = table.aligned(dataset.item_ids)
    cosine = (weights * aligned).sum(1) / np.linalg.norm(weights, axis=1) / np.linalg.norm(aligned, axis=1)
    assert method == "llm2bert4rec" and cosine.min() > 0.999


def test_a_cell_on_another_backbone_fails_with_its_reason_before_any_build(tmp_path):
    config = QualityConfig(data=DATA, methods=["llm2bert4rec"], backbones=["sasrec"], seeds=[0], epochs=1,
                           dim=16, text_encoder="tiny", isolate=False, runs_dir=tmp_path / "runs",
                           results=tmp_path / "quality.json")  # fmt: skip
    cells = grid.run_grid(config, load_dataset(config), tmp_path / "runs")
    assert [(c.method, c.backbone, c.status) for c in cells] == [("llm2bert4rec", "sasrec", "failed")]
    assert "only a bert4rec backbone, not sasrec" in cells[0].reason
    assert not (tmp_path / "runs" / "llm2bert4rec" / "table").exists()  # refused before the table was built
