"""`semrec demo` wires SAID -> SASRec -> ONNX together (tiny LM; the serving half has its own test)."""

import json

import pytest
from semrec.bundle import Bundle
from semrec.item_table import ItemTable
from semrec_worker.commands.demo import DemoConfig, demo


@pytest.mark.slow
def test_demo_trains_said_then_sasrec_and_exports(tmp_path):
    work = tmp_path / "demo"
    demo(DemoConfig(data="synthetic:users=400,items=200,avg_len=8,seed=5", out=work, llm="tiny",
                    said_epochs=1, said_max_train_minutes=0.2, seqrec_epochs=2, dim=16, serve=False))  # fmt: skip
    table = ItemTable.load(work / "said")
    assert table.metadata["method"] == "said"
    metrics = json.loads((work / "sasrec" / "metrics.json").read_text())
    init = metrics["init"]  # the backbone was initialised from the SAID table, every item found in it
    assert init["method"] == "said" and init["missing_items"] == 0 and init["table_dim"] == table.dim
    bundle = Bundle.load(work / "sasrec")
    assert len(bundle.item_ids) == metrics["dataset"]["n_items"] > 0
    assert bundle.item_ids == table.ids  # the demo's one dataset: the same catalogue, in the same order
    assert bundle.dim == 16 and bundle.item_vectors.shape == (len(table.ids), 16)
