"""The method registry: adding a method is one module plus one `MethodSpec`; its table is built through the
registry, and the quality grid trains and reports its backbone cells with no other change."""

from __future__ import annotations

import pytest
from example_method import CaptionHashConfig
from semrec.item_table import ItemTable
from semrec.results import read_results
from semrec_worker.data import load_dataset
from semrec_worker.experiments import grid
from semrec_worker.experiments.config import QualityConfig, table_keys
from semrec_worker.methods import registry
from semrec_worker.methods.registry import SEQREC, MethodSpec, Ref, TableBuild

DATA = "synthetic:users=300,items=200,avg_len=10,seed=1"
EXAMPLE = MethodSpec(
    "caption-hash", "CaptionHash", stage2=SEQREC, cell=lambda inputs: {"init": str(inputs.table())},
    table=TableBuild(CaptionHashConfig, Ref("example_method:build_table"), "Caption 3-gram hashing vectors."),
)


@pytest.fixture
def example_method():
    registry.register(EXAMPLE)
    yield EXAMPLE
    registry.unregister(EXAMPLE.name)


def test_the_registry_holds_every_method_once():
    assert registry.names() == ["popularity", "llmseqsim", "llmseqprompt", "sknn", "vsknn", "cooc", "random", "lh",
                               "llm2x", "llm2bert4rec", "said", "llmemb", "tslrec"]
    assert registry.without_backbone() == ["popularity", "llmseqsim", "llmseqprompt", "sknn", "vsknn", "cooc"]
    assert registry.with_table() == ["lh", "llm2x", "llm2bert4rec", "said", "llmemb"]
    assert {s.stage2.command for s in registry.SPECS.values() if s.stage2} == {"seqrec", "llmemb-rat", "tslrec"}
    assert set(registry.train_commands()) == {"lh", "llm2x", "llm2bert4rec", "said", "llmemb", "seqrec",
                                                "llmemb-rat", "tslrec"}
    assert "llmseqprompt" not in QualityConfig().methods and "llm2bert4rec" not in QualityConfig().methods
    with pytest.raises(ValueError, match="unknown method"):
        QualityConfig(methods=["caption-hash"])


def test_a_method_added_through_the_registry_builds_its_table_and_trains_a_cell(example_method, tmp_path):
    build = registry.get("caption-hash").table
    path = build.run.load()(build.config(data=DATA, width=24, out=tmp_path / "table"))
    table = ItemTable.load(path)
    assert table.dim == 24 and table.metadata["method"] == "caption-hash" and "caption-hash" in table_keys()

    config = QualityConfig(data=DATA, methods=["caption-hash"], backbones=["sasrec"], seeds=[0], epochs=1,
                           dim=16, isolate=False, runs_dir=tmp_path / "runs", results=tmp_path / "quality.json")
    cells = grid.run_grid(config, load_dataset(config), tmp_path / "runs")
    assert [(c.method, c.status) for c in cells] == [("caption-hash", "trained")]
    cell = tmp_path / "runs" / "caption-hash" / "sasrec" / "seed0"
    runs = read_results(cell / "results.json").runs
    assert {r.protocol for r in runs} == {"full", "sampled100"} and cells[0].runs == runs
    assert all(r.method == "caption-hash" and r.backbone == "sasrec" and r.config["epochs_run"] == 1 for r in runs)
    assert ItemTable.load(tmp_path / "runs" / "caption-hash" / "table").metadata["method"] == "caption-hash"
