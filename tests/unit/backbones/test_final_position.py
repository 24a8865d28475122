"""`final_position` (what `semrec export onnx` serves) equals the full computation's last position for every
backbone and item layer, in torch and through ONNX Runtime, and the Transformers' last block really runs on
one row."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from semrec.item_table import ItemTable
from semrec_worker.backbones import BACKBONES, build_backbone, build_item_embedding, left_pad
from semrec_worker.backbones.item_embedding import build_item_layer
from semrec_worker.export.onnx import ServingEncoder

IDS = [f"i{k}" for k in range(40)]
MAX_LEN = 12
# left-padded as the ranker pads: empty, one item, partial, exactly max_len, longer (left-truncated)
HISTORIES = [[], [7], [1, 2, 3], list(range(1, MAX_LEN + 1)), list(range(3, 3 + MAX_LEN + 5)), [39, 39, 5, 39]]
ITEM_LAYERS = ["embedding", "table-projection", "frozen", "dual-sum", "dual-concat", "dual-gate"]


def item_layer(kind: str, dim: int):
    rng = np.random.default_rng(0)
    table = ItemTable(IDS, rng.normal(size=(len(IDS), 24)).astype(np.float32), {"method": "fake"})
    if kind == "embedding":
        return build_item_embedding(IDS, dim)[0]
    if kind == "table-projection":
        return build_item_embedding(IDS, dim, table, projection="linear")[0]
    if kind == "frozen":
        return build_item_layer("frozen", IDS, dim, table, adapter_hidden=16)[0]
    return build_item_layer("dual", IDS, dim, table, kind.split("-")[1], 16)[0]


def make(backbone: str, layer: str, num_layers: int = 1, heads: int = 1):
    torch.manual_seed(0)
    model = build_backbone(backbone, item_layer(layer, 16), max_len=MAX_LEN, num_layers=num_layers,
                           num_heads=heads, dropout=0.1)  # fmt: skip
    return model.eval()  # dropout is off in eval, as served


def to_onnx(module: torch.nn.Module, example: torch.Tensor) -> ort.InferenceSession:
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buffer, input_names=["item_ids"], output_names=["embedding"],
                          dynamic_axes={"item_ids": {0: "batch"}, "embedding": {0: "batch"}}, opset_version=17,
                          dynamo=False)  # fmt: skip
    return ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("layer", ITEM_LAYERS)
@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_final_position_equals_the_full_computation_in_torch_and_onnx(backbone, layer):
    model = make(backbone, layer)
    batch = left_pad(HISTORIES, MAX_LEN)
    with torch.no_grad():
        full = model(batch)
        final = model.final_position(batch)
    assert final.shape == full.shape == (len(HISTORIES), model.dim)
    assert (final - full).abs().max().item() < 1e-5
    assert not torch.allclose(full[2], full[3])  # different histories, different outputs (not a constant)
    session = to_onnx(ServingEncoder(model, "cosine").eval(), batch[:2])
    with torch.no_grad():
        reference = torch.nn.functional.normalize(full, dim=-1).numpy()
    for rows in (batch[:1], batch):  # the dynamic batch axis
        served = session.run(["embedding"], {"item_ids": rows.numpy()})[0]
        assert np.abs(served - reference[: len(rows)]).max() < 1e-5


@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize("backbone", ["sasrec", "bert4rec"])
def test_deeper_transformers_run_only_the_last_block_on_one_row(backbone, heads):
    model = make(backbone, "embedding", num_layers=3, heads=heads)
    batch = left_pad(HISTORIES, MAX_LEN)
    widths: dict[int, int] = {}
    hooks = [block.ffn.register_forward_hook(lambda _m, args, _out, n=n: widths.__setitem__(n, args[0].shape[1]))
             for n, block in enumerate(model.blocks)]  # fmt: skip
    with torch.no_grad():
        final = model.final_position(batch)
        assert widths == {0: MAX_LEN, 1: MAX_LEN, 2: 1}  # earlier blocks: every position (keys, values)
        full = model(batch)
    for hook in hooks:
        hook.remove()
    assert (final - full).abs().max().item() < 1e-5


def test_final_position_is_independent_of_the_padding_width():
    for backbone in BACKBONES:
        model = make(backbone, "embedding", num_layers=2)
        short = [h for h in HISTORIES if 0 < len(h) < 7]
        with torch.no_grad():
            narrow = model.final_position(left_pad(short, 7))
            wide = model.final_position(left_pad(short, MAX_LEN))
        assert (narrow - wide).abs().max().item() < 1e-5, backbone
