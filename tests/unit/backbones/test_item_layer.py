"""Item-layer modes (init / frozen / dual) for every backbone: what trains, what is served, what a new item gets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from semrec.bundle import Bundle
from semrec.errors import UserError
from semrec.item_table import ItemTable
from semrec_worker.backbones.item_embedding import (
    DualItemLayer,
    TableAdapter,
    ViewFusion,
    build_item_embedding,
    build_item_layer,
)
from semrec_worker.export import export_run
from semrec_worker.methods.llmemb.model import LLMEmbAdapter
from semrec_worker.methods.registry import load_item_encoder
from semrec_worker.refresh.encoders import ItemLayerEncoder
from semrec_worker.refresh.item_layer import save_item_layer_encoder
from semrec_worker.training import SeqRecConfig, train_seqrec

DATA = "synthetic:users=300,items=200,avg_len=10,seed=1"


@pytest.fixture
def table(tiny_synthetic) -> ItemTable:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(tiny_synthetic.n_items, 24)).astype(np.float32) * 3.0
    return ItemTable(tiny_synthetic.item_ids, vectors, {"method": "fake-llm"})


@pytest.mark.parametrize("fusion", ["sum", "concat", "gate"])
def test_dual_layer_lookup_equals_its_item_matrix_and_only_the_table_is_frozen(tiny_synthetic, table, fusion):
    layer, report = build_item_layer("dual", tiny_synthetic.item_ids, 16, table, fusion, 8, "table",
                                     torch.Generator().manual_seed(0))
    assert isinstance(layer, DualItemLayer) and "dual" in report.reduction
    ids = torch.tensor([[0, 3, 7], [1, 1, 150]])
    torch.testing.assert_close(layer(ids)[:, 1:], layer.weight[ids][:, 1:])
    assert "semantic.table" not in dict(layer.named_parameters())  # a buffer: never trained
    layer.weight[1:].sum().backward()
    assert layer.ids.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in layer.semantic.adapter.parameters())


def test_fusions_start_from_the_sum_or_the_mean_of_the_views():
    semantic, ids = torch.randn(5, 4), torch.randn(5, 4)
    torch.testing.assert_close(ViewFusion("sum", 4)(semantic, ids), semantic + ids)
    for fusion in ("concat", "gate"):
        torch.testing.assert_close(ViewFusion(fusion, 4)(semantic, ids), (semantic + ids) / 2)
    with pytest.raises(UserError):
        ViewFusion("product", 4)


def test_adapter_rows_start_at_mean_norm_one_whatever_the_table_scale():
    table = torch.cat([torch.zeros(1, 30), 50 * torch.randn(40, 30)])
    for hidden in (0, 12):
        adapter = TableAdapter(table, 8, hidden)
        assert adapter.weight[1:].norm(dim=1).mean().item() == pytest.approx(1.0, rel=1e-4)
        assert len(adapter.adapter) == (2 if hidden else 1)


def adapted_mean_cosine(rows: torch.Tensor) -> float:
    unit = torch.nn.functional.normalize(rows, dim=1)
    return float((unit @ unit.T).mean())


def test_adapters_start_with_items_as_distinct_as_their_table():
    """No shared offset at initialisation: a table of near-orthogonal rows (mean pairwise cosine ~0) stays so
    through either adapter, and so does one whose rows share a large common part (as raw mean-pooled LM states
    do), rather than every item starting in one direction."""
    torch.manual_seed(0)
    rows = torch.nn.functional.normalize(torch.randn(300, 64), dim=1)
    table = torch.cat([torch.zeros(1, 64), rows])
    offset = torch.cat([torch.zeros(1, 64), rows + 3.0 * torch.nn.functional.normalize(torch.randn(1, 64), dim=1)])
    assert abs(adapted_mean_cosine(rows)) < 0.05 and adapted_mean_cosine(offset[1:]) > 0.8
    for hidden in (0, 32):
        for frozen in (table, offset):
            adapter = TableAdapter(frozen, 16, hidden)
            assert abs(adapted_mean_cosine(adapter.weight.detach()[1:])) < 0.05
            assert adapter.weight[1:].norm(dim=1).mean().item() == pytest.approx(1.0, rel=1e-4)
    llmemb = LLMEmbAdapter(table, 16)
    assert abs(adapted_mean_cosine(llmemb.weight.detach()[1:])) < 0.05
    assert llmemb.weight[1:].norm(dim=1).mean().item() == pytest.approx(1.0, rel=1e-4)


def test_whitened_start_gives_every_principal_direction_unit_variance():
    """A table whose variance sits in one direction (as a SAID table's does) reaches the hidden layer of a
    whitened adapter with its top directions at unit variance and uncorrelated; the centred start keeps the
    dominant direction dominant."""
    torch.manual_seed(0)
    scales = torch.tensor([30.0] + [1.0] * 11)
    rows = (torch.randn(400, 12) * scales) @ torch.linalg.qr(torch.randn(12, 12))[0] + 5.0
    table = torch.cat([torch.zeros(1, 12), rows])
    hidden = TableAdapter(table, 8, 6, whiten=True).adapter[0](table[1:]).detach().double()
    torch.testing.assert_close(hidden.mean(dim=0), torch.zeros(6, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.cov(hidden.T), torch.eye(6, dtype=torch.float64), atol=1e-3, rtol=0)
    plain = TableAdapter(table, 8, 6).adapter[0](table[1:]).detach()
    top = torch.linalg.eigvalsh(torch.cov(plain.T.double()))
    assert top[-1] > 50 * top[-2]  # centred start: one direction dominates
    whitened = TableAdapter(table, 8, 6, whiten=True)
    assert whitened.weight[1:].norm(dim=1).mean().item() == pytest.approx(1.0, rel=1e-4)
    wide = TableAdapter(table, 8, 20, whiten=True).adapter[0].weight  # more hidden units than table directions
    assert torch.isfinite(wide).all()


def test_adapter_start_is_a_saved_choice(tmp_path, tiny_synthetic, table):
    table.save(tmp_path / "t.npz")
    config = SeqRecConfig(data=DATA, out=tmp_path / "run", dim=16, max_len=12, epochs=1, threads=1, batch_size=64,
                          init=str(tmp_path / "t.npz"), item_layer="frozen", adapter_start="whitened",
                          refresh_text_encoder="none")
    train_seqrec(config, dataset=tiny_synthetic)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["config"]["model"]["items"]["adapter_start"] == "whitened"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "whitened start" in metrics["init"]["reduction"]


def test_whitened_init_start_spreads_a_few_direction_table_over_every_direction(tmp_path, tiny_synthetic):
    rng = np.random.default_rng(0)
    skewed = rng.normal(size=(tiny_synthetic.n_items, 24)) * np.geomspace(50.0, 0.05, 24)
    table = ItemTable(tiny_synthetic.item_ids, skewed.astype(np.float32), {"method": "fake-llm"})
    plain, _ = build_item_embedding(tiny_synthetic.item_ids, 16, table)
    white, report = build_item_embedding(tiny_synthetic.item_ids, 16, table, whiten=True)
    assert "whitened" in report.reduction
    for layer in (plain, white):
        assert layer.weight[1:].norm(dim=1).mean().item() == pytest.approx(1.0, rel=1e-4)

    def top_share(layer) -> float:  # share of the rows' variance in their first principal direction
        values = torch.linalg.svdvals(layer.weight[1:].detach() - layer.weight[1:].detach().mean(0)) ** 2
        return float(values[0] / values.sum())

    assert top_share(white) == pytest.approx(1 / 16, rel=1e-3) and top_share(plain) > 4 * top_share(white)
    table.save(tmp_path / "t.npz")
    config = SeqRecConfig(data=DATA, out=tmp_path / "run", dim=16, max_len=12, epochs=1, threads=1, batch_size=64,
                          init=str(tmp_path / "t.npz"), init_start="whitened")
    train_seqrec(config, dataset=tiny_synthetic)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["config"]["model"]["items"]["init_start"] == "whitened"
    assert "whitened" in json.loads((tmp_path / "run" / "metrics.json").read_text())["init"]["reduction"]
    dual, dual_report = build_item_layer("dual", tiny_synthetic.item_ids, 16, table, "sum", 8, "table",
                                         init_start="whitened")
    assert "whitened" in dual_report.reduction and top_share(dual.ids) == pytest.approx(1 / 16, rel=1e-3)


def test_frozen_and_dual_need_a_table_and_refuse_the_legacy_flags(tmp_path, tiny_synthetic, table):
    with pytest.raises(UserError, match="needs an item table"):
        build_item_layer("frozen", tiny_synthetic.item_ids, 16, None)
    table.save(tmp_path / "t.npz")
    for flags in ({"freeze_items": True}, {"projection": "linear"}):
        with pytest.raises(ValidationError, match="--item-layer init"):  # with the flags, before any data loads
            SeqRecConfig(data=DATA, out=tmp_path / "run", dim=16, max_len=12, epochs=1, init=str(tmp_path / "t.npz"),
                         item_layer="dual", **flags)


@pytest.mark.parametrize("backbone", ["gru4rec", "sasrec", "bert4rec"])
@pytest.mark.parametrize(("mode", "fusion"), [("frozen", "sum"), ("dual", "gate"), ("dual", "concat")])
def test_every_backbone_trains_exports_and_refreshes_in_each_mode(tmp_path, tiny_synthetic, table, backbone, mode,
                                                                  fusion):
    table.save(tmp_path / "t.npz")
    loss = "full_ce" if backbone == "gru4rec" else "said_cosine"  # dot-product and cosine serving spaces
    config = SeqRecConfig(data=DATA, out=tmp_path / "run", backbone=backbone, loss=loss, dim=16, max_len=12, epochs=1,
                          threads=1, batch_size=64, init=str(tmp_path / "t.npz"), item_layer=mode, fusion=fusion,
                          refresh_text_encoder="hashing", refresh_neighbours=1)
    result = train_seqrec(config, dataset=tiny_synthetic)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["config"]["model"]["items"]["item_layer"], saved["config"]["model"]["items"]["fusion"]) == (mode, fusion)
    assert saved["parts"]["item_layer"] == ("table-adapter" if mode == "frozen" else f"dual-{fusion}")
    exported = export_run(tmp_path / "run")
    assert exported.max_abs_diff < 1e-4
    assert save_item_layer_encoder(tmp_path / "run") == tmp_path / "run" / "refresh_encoder"  # `semrec export onnx`
    bundle = Bundle.load(tmp_path / "run")
    assert bundle.metadata["item_layer"]["mode"] == mode
    # served item vectors = the fused item matrix of the trained layer (through the run's serving space)
    encoder = load_item_encoder(tmp_path / "run")
    assert isinstance(encoder, ItemLayerEncoder)
    with torch.no_grad():
        fused = result.model.item_embedding.weight[1:].numpy()
    np.testing.assert_allclose(encoder.space.apply(fused), bundle.item_vectors, atol=1e-5)
    # the numpy refresh encoder reproduces the trained layer from the catalogue's own table rows (a catalogue
    # item's nearest neighbour by table cosine is itself, so with one neighbour its ID part is its own row)
    rows = encoder.arrays["table"]
    np.testing.assert_allclose(encoder.space.apply(encoder.model_vectors(rows)), bundle.item_vectors, atol=1e-4)
    new = [type(tiny_synthetic.items[0])("brand-new", title="a brand new gadget", brand="Acme")]
    vector = encoder.encode(new)
    assert vector.shape == (1, bundle.item_vectors.shape[1]) and np.isfinite(vector).all()
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_a_new_items_id_part_is_the_mean_of_its_neighbours_rows_or_zero():
    table = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    ids = np.array([[2.0, 0.0], [0.0, 4.0], [8.0, 8.0]], np.float32)
    spec = {"mode": "dual", "fusion": "sum", "neighbours": 2, "adapter_layers": 0,
            "serving_space": {"similarity": "cosine", "dim": 2}, "dim": 2}
    encoder = ItemLayerEncoder(spec, {"table": table, "id_rows": ids})
    # query (1, 0.2): cosines 0.98 (row 0), 0.20 (row 1), 0.83 (row 2): rows 0 and 2, weighted by cosine
    query = np.array([[1.0, 0.2]], np.float32)
    cos = (table @ query[0]) / np.linalg.norm(table, axis=1) / np.linalg.norm(query)
    expected = (cos[0] * ids[0] + cos[2] * ids[2]) / (cos[0] + cos[2])
    np.testing.assert_allclose(encoder.id_part(query)[0], expected, rtol=1e-5)
    encoder.spec["neighbours"] = 0
    np.testing.assert_array_equal(encoder.id_part(query), np.zeros((1, 2)))
    np.testing.assert_allclose(encoder.model_vectors(query), query)  # no adapter layers, zero ID part: z itself


def test_the_text_map_recovers_a_table_that_is_a_linear_function_of_the_text_embedding():
    from semrec_worker.refresh.encoders import ridge_map

    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 64))
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # unit-norm like a text encoder's output: variances ~1/64
    y = x @ rng.normal(size=(64, 16)) + 0.5  # e.g. a PCA of the text embeddings, rescaled
    weights, bias = ridge_map(x, y)
    predicted = x @ weights + bias
    cosine = np.sum(predicted * y, axis=1) / np.linalg.norm(predicted, axis=1) / np.linalg.norm(y, axis=1)
    assert cosine.min() > 0.999
