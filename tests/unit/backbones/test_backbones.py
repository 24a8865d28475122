"""Backbones: output shapes, padding invariance, causality, training pairs, item-embedding initialisation."""

import numpy as np
import pytest
import torch
from semrec.errors import UserError
from semrec.item_table import ItemTable
from semrec_worker.backbones import BACKBONES, TableProjection, build_backbone, build_item_embedding, left_pad

IDS = [f"i{k}" for k in range(20)]
HISTORIES = [[1, 2, 3], [4, 5, 6, 7, 8, 9], [10]]


def make(name: str, dim: int = 8, max_len: int = 12, **kw):
    torch.manual_seed(0)
    items, _ = build_item_embedding(IDS, dim)
    return build_backbone(name, items, max_len=max_len, dropout=0.0, **kw).eval()


@pytest.mark.parametrize("name", list(BACKBONES))
def test_output_shape_and_independent_of_padding_width(name):
    model = make(name)
    with torch.no_grad():
        narrow = model(left_pad(HISTORIES, 7))
        wide = model(left_pad(HISTORIES, 12))
    assert narrow.shape == (3, 8)
    assert torch.allclose(narrow, wide, atol=1e-5)


@pytest.mark.parametrize("name", ["gru4rec", "sasrec"])
def test_causal_outputs_ignore_future_items(name):
    model = make(name)
    a = left_pad([[1, 2, 3, 4, 5]], 8)
    b = left_pad([[1, 2, 3, 9, 11]], 8)
    with torch.no_grad():
        out_a, out_b = model.sequence_output(a), model.sequence_output(b)
    assert torch.allclose(out_a[:, 3:6], out_b[:, 3:6], atol=1e-6)  # positions of items 1, 2, 3
    assert not torch.allclose(out_a[:, -1], out_b[:, -1])
    assert torch.allclose(out_a[:, -1], model(a), atol=1e-6)


@pytest.mark.parametrize("name", ["gru4rec", "sasrec"])
def test_causal_training_pairs_predict_every_next_item(name):
    model = make(name)
    windows = left_pad([[1, 2, 3, 4], [5, 6]], 6)
    hidden, targets = model.training_pairs(windows)
    assert targets.tolist() == [2, 3, 4, 6]
    with torch.no_grad():
        assert torch.allclose(hidden[2], model(left_pad([[1, 2, 3]], 6))[0], atol=1e-5)


def test_bert4rec_masks_items_and_predicts_them():
    model = make("bert4rec", mask_prob=0.5)
    windows = left_pad([[1, 2, 3, 4, 5, 6], [7, 8]], 8)
    noise = torch.ones(windows.shape)  # nothing drawn: the last item of each row is masked
    hidden, targets = model.training_pairs(windows, noise)
    assert targets.tolist() == [6, 8] and hidden.shape == (2, 8)
    noise = torch.zeros(windows.shape)  # everything drawn: every real item is masked
    _, targets = model.training_pairs(windows, noise)
    assert sorted(targets.tolist()) == [1, 2, 3, 4, 5, 6, 7, 8]


def test_bert4rec_inference_mask_is_the_training_last_item_mask():
    """Serving appends [mask] after the history; training masks the last item of the window: the two must be
    the same computation (same position, same context), or the model is served a task it never trained on."""
    model = make("bert4rec", max_len=6)
    windows = left_pad([[1, 2, 3, 4], [5, 6, 7, 8, 9, 10, 11]], 7)  # the second is longer than max_len
    hidden, targets = model.training_pairs(windows, torch.ones(windows.shape))  # only the last items masked
    assert targets.tolist() == [4, 11]
    with torch.no_grad():
        served = model(left_pad([[1, 2, 3], [5, 6, 7, 8, 9, 10]], 6))
    assert torch.allclose(hidden, served, atol=1e-5)


def test_bert4rec_learns_a_deterministic_successor():
    """Each item is followed by the next id (cyclically): the cloze objective must teach the appended [mask] to
    predict it, as it does SASRec's last position."""
    n_items, rng = 12, np.random.default_rng(0)
    starts, lengths = rng.integers(0, n_items, 120), rng.integers(4, 9, 120)
    sequences = [(np.arange(s, s + n) % n_items) + 1 for s, n in zip(starts, lengths, strict=True)]
    torch.manual_seed(0)
    items, _ = build_item_embedding([f"i{k}" for k in range(n_items)], 16)
    model = build_backbone("bert4rec", items, max_len=8, dropout=0.0, mask_prob=0.4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    windows = left_pad([s[:-1] for s in sequences], 9)
    generator = torch.Generator().manual_seed(0)
    for _ in range(150):
        hidden, targets = model.training_pairs(windows, torch.rand(windows.shape, generator=generator))
        loss = torch.nn.functional.cross_entropy(hidden @ model.item_embedding.weight[1:].T, targets - 1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = (model(left_pad([s[:-1] for s in sequences], 8)) @ model.item_embedding.weight[1:].T).argmax(1) + 1
    accuracy = (predicted == torch.as_tensor(np.array([s[-1] for s in sequences]))).float().mean()
    assert accuracy > 0.9  # chance: 1 / 12


def test_random_init_scale_and_frozen_items():
    layer, report = build_item_embedding(IDS, 16)
    norms = layer.weight[1:].norm(dim=1)
    assert report.method == "random" and 0.6 < norms.mean() < 1.4 and layer.weight[0].abs().sum() == 0
    frozen, _ = build_item_embedding(IDS, 16, freeze=True)
    assert not any(p.requires_grad for p in frozen.parameters())


def test_table_init_pca_copy_missing_and_linear():
    rng = np.random.default_rng(0)
    ids = IDS[:15] + ["not-in-dataset"]
    table = ItemTable(ids, rng.normal(size=(16, 24)), {"method": "fake"})
    layer, report = build_item_embedding(IDS, 8, table)
    assert report.method == "fake" and report.reduction == "pca 24->8" and report.missing_items == 5
    assert 0 < report.explained_variance < 1
    assert layer.weight[1:16].norm(dim=1).mean().item() == pytest.approx(1.0, rel=1e-4)
    # same width: rows are copied (rescaled to mean norm 1), so cosine geometry is kept
    same = ItemTable(IDS, rng.normal(size=(20, 8)), {"method": "fake"})
    copied, _ = build_item_embedding(IDS, 8, same)
    cos = torch.nn.functional.cosine_similarity(copied.weight[1:], torch.from_numpy(same.vectors), dim=1)
    assert torch.allclose(cos, torch.ones(20), atol=1e-5)
    projected, report = build_item_embedding(IDS, 8, table, projection="linear")
    assert isinstance(projected, TableProjection) and projected.weight.shape == (21, 8)
    assert projected.weight[0].abs().sum() == 0 and report.reduction.startswith("linear")
    assert not projected.table.requires_grad and projected.linear.weight.requires_grad
    with pytest.raises(UserError, match="cannot widen"):
        build_item_embedding(IDS, 32, table)
    with pytest.raises(UserError, match="no item id"):
        build_item_embedding(IDS, 8, ItemTable(["x", "y"], np.ones((2, 8)), {"method": "fake"}))


def test_any_module_with_weight_plugs_in():
    class Adapter(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("frozen", torch.randn(21, 12))
            self.net = torch.nn.Linear(12, 8)

        @property
        def weight(self):
            return self.net(self.frozen)

        def forward(self, ids):
            return self.net(self.frozen[ids])

    model = build_backbone("sasrec", Adapter(), max_len=6)
    assert model.n_items == 20 and model.dim == 8
    assert model(left_pad(HISTORIES, 6)).shape == (3, 8)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("caser", Adapter())
