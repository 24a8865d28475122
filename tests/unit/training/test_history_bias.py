"""The learned history bias (`--history-bias learned`): saved with the run and rebuilt, learned from the
training data, added to the scores of history items only (training losses, evaluation, the Python API), and
invisible to the ONNX export."""

import numpy as np
import pytest
import torch
from semrec_worker.api import Recommender
from semrec_worker.backbones import build_backbone, build_item_embedding, left_pad
from semrec_worker.data.dataset import SequenceDataset
from semrec_worker.data.records import Item
from semrec_worker.evaluation import EvalSettings, evaluate
from semrec_worker.export import export_run
from semrec_worker.losses import LOSSES, HistoryShift, build_loss
from semrec_worker.methods.rebuild import model_from_config
from semrec_worker.training import SeqRecConfig, SeqRecRecommender, train_seqrec
from semrec_worker.training.config import load_seqrec_config

N_ITEMS, MAX_LEN = 40, 10


def no_repeat_dataset(n_users: int = 120, length: int = 8, seed: int = 0) -> SequenceDataset:
    """Sequences of distinct items: the next item is never one the user already has."""
    rng = np.random.default_rng(seed)
    ids = [f"i{k}" for k in range(1, N_ITEMS + 1)]
    sequences = [rng.permutation(np.arange(1, N_ITEMS + 1))[:length] for _ in range(n_users)]
    return SequenceDataset("no-repeats", ids, [Item(i) for i in ids], [f"u{u}" for u in range(n_users)], sequences)


def train(tmp_path, backbone="sasrec", loss="full_ce", epochs=2, history_bias="learned", **kw):
    config = SeqRecConfig(data="synthetic", out=tmp_path / f"{backbone}-{loss}", backbone=backbone, loss=loss, dim=8,
                          max_len=MAX_LEN, epochs=epochs, batch_size=32, threads=1, history_bias=history_bias,
                          history_bias_lr=0.05, **kw)  # fmt: skip
    return train_seqrec(config, dataset=no_repeat_dataset())


@pytest.mark.parametrize(("backbone", "loss"), [("sasrec", "full_ce"), ("sasrec", "said_cosine"),
                                                ("gru4rec", "sampled_softmax"), ("bert4rec", "bce")])
@pytest.mark.parametrize("history_bias", ["learned", "learned_last"])
def test_learns_a_negative_bias_where_repeats_never_happen(tmp_path, backbone, loss, history_bias):
    result = train(tmp_path, backbone, loss, history_bias=history_bias, n_negatives=16)
    names = ["history_bias"] + (["last_item_bias"] if history_bias == "learned_last" else [])
    assert (result.model.last_item_bias is not None) == (history_bias == "learned_last")
    for name in names:
        trained = getattr(result.model, name)
        assert trained is not None and float(trained.detach()) < 0
        biases = [epoch[name] for epoch in result.history]
        assert biases[-1] < biases[0] < 0  # every step pushes it down: a target is never in its history


def test_bias_is_saved_in_the_config_and_rebuilt(tmp_path):
    result = train(tmp_path, epochs=1, history_bias="learned_last")
    assert load_seqrec_config(result.run_dir).model.history_bias == "learned_last"
    rebuilt = model_from_config(result.run_dir)
    assert rebuilt.history_bias is not None and rebuilt.last_item_bias is not None
    assert float(rebuilt.history_bias) == pytest.approx(float(result.model.history_bias))
    assert float(rebuilt.last_item_bias) == pytest.approx(float(result.model.last_item_bias))
    plain = model_from_config(train_plain(tmp_path).run_dir)
    assert plain.history_bias is None and "history_bias" not in plain.state_dict()


def train_plain(tmp_path):
    config = SeqRecConfig(data="synthetic", out=tmp_path / "plain", dim=8, max_len=MAX_LEN, epochs=1, batch_size=32,
                          threads=1, loss="full_ce")  # fmt: skip
    return train_seqrec(config, dataset=no_repeat_dataset())


def without_bias(model):
    clone = build_backbone(model.name, model.item_embedding, max_len=model.max_len, dropout=0.0)
    clone.load_state_dict({k: v for k, v in model.state_dict().items() if not k.endswith("_bias")})
    return clone.eval()


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "bert4rec"])
@pytest.mark.parametrize("history_bias", ["learned", "learned_last"])
def test_history_items_are_shifted_by_exactly_b(backbone, history_bias):
    torch.manual_seed(0)
    items, _ = build_item_embedding([f"i{k}" for k in range(N_ITEMS)], 8)
    model = build_backbone(backbone, items, max_len=6, dropout=0.0, history_bias=history_bias).eval()
    b_last = -2.0 if history_bias == "learned_last" else 0.0
    with torch.no_grad():
        model.history_bias.fill_(-0.75)
        if model.last_item_bias is not None:
            model.last_item_bias.fill_(b_last)
    histories = [np.array([3, 5, 3]), np.array([1, 2, 3, 4, 5, 6, 7, 8]), np.array([9])]
    shifted = SeqRecRecommender(model, "dot").score(histories)
    plain = SeqRecRecommender(without_bias(model), "dot").score(histories)
    want = torch.zeros_like(shifted)
    read = 6 if backbone != "bert4rec" else 5  # what the encoder reads: BERT4Rec keeps a column for [mask]
    for row, history in enumerate(histories):
        want[row, torch.as_tensor(history[-read:])] = -0.75  # once, however often the item occurs
        want[row, int(history[-1])] += b_last
    finite = torch.isfinite(plain)
    assert torch.allclose(shifted[finite] - plain[finite], want[finite], atol=1e-5)
    assert (want[1, 1:9] != 0).sum() == read and want[1, 1] == 0  # the oldest items are not in the window


def test_training_positions_know_their_history_and_last_item():
    items, _ = build_item_embedding([f"i{k}" for k in range(N_ITEMS)], 8)
    causal = build_backbone("sasrec", items, max_len=6, history_bias="learned_last")
    windows = left_pad([[1, 2, 1, 4], [5, 6]], 7)
    _, targets = causal.training_pairs(windows)
    assert targets.tolist() == [2, 1, 4, 6]
    assert causal.training_last_item(windows).tolist() == [1, 2, 1, 5]
    assert [sorted(set(h.tolist()) - {0}) for h in causal.training_history(windows)] == [[1], [1, 2], [1, 2], [5]]
    bert = build_backbone("bert4rec", items, max_len=6, mask_prob=0.5, history_bias="learned_last")
    windows = left_pad([[1, 2, 3, 4, 5]], 6)
    noise = torch.tensor([[1.0, 1.0, 0.0, 1.0, 0.0, 0.0]])  # masks the items 2, 4 and 5
    _, targets = bert.training_pairs(windows, noise)
    assert targets.tolist() == [2, 4, 5]
    assert bert.training_last_item(windows, noise).tolist() == [1, 3, 3]  # the nearest visible item before
    assert [sorted(set(h.tolist()) - {0}) for h in bert.training_history(windows, noise)] == [[1, 3]] * 3


def test_full_ce_and_said_cosine_add_b_before_the_softmax():
    torch.manual_seed(0)
    hidden, items = torch.randn(3, 4), torch.randn(7, 4)
    targets = torch.tensor([1, 2, 6])
    history = torch.tensor([[2, 3, 3], [0, 0, 1], [5, 6, 0]])
    shift = HistoryShift.of(history, 7, torch.tensor(-1.5))
    assert shift.seen.sum(1).tolist() == [2, 1, 2]  # duplicates once, padding never
    logits = hidden @ items.T
    logits[:, 0] = float("-inf")
    manual = torch.nn.functional.cross_entropy(logits - 1.5 * shift.seen, targets)
    assert torch.allclose(build_loss("full_ce")(hidden, targets, items, history=shift), manual)
    cosine = torch.nn.functional.normalize(hidden, dim=-1) @ torch.nn.functional.normalize(items, dim=-1).T
    cosine[:, 0] = float("-inf")
    manual = torch.nn.functional.cross_entropy((cosine - 1.5 * shift.seen) / 0.1, targets)
    assert torch.allclose(build_loss("said_cosine", 0.1)(hidden, targets, items, history=shift), manual)
    with_last = HistoryShift.of(history, 7, torch.tensor(-1.5), torch.tensor([3, 1, 5]), torch.tensor(-0.5))
    full = with_last.add_to(torch.zeros(3, 7))
    assert full[0].tolist() == [0, 0, -1.5, -2.0, 0, 0, 0]  # b on the history, b + b_last on the most recent
    columns = torch.tensor([[1, 3], [1, 2], [5, 6]])  # per row (sampled negatives are shared: [K])
    assert torch.equal(with_last.at(columns), full.gather(1, columns))
    assert torch.equal(with_last.at(torch.tensor([1, 3, 5])), full[:, [1, 3, 5]])
    zero = HistoryShift.of(history, 7, torch.tensor(0.0), torch.tensor([3, 1, 5]), torch.tensor(0.0))
    for name in LOSSES:  # b = 0 is the loss without the option
        loss = build_loss(name, n_negatives=4, popularity=np.ones(7))
        with_zero = loss(hidden, targets, items, torch.Generator().manual_seed(1), history=zero)
        assert torch.allclose(with_zero, loss(hidden, targets, items, torch.Generator().manual_seed(1)))


def test_evaluation_differs_only_by_the_history_shift(tmp_path):
    result = train(tmp_path, epochs=1)
    dataset = no_repeat_dataset()
    model, plain = result.model.eval(), without_bias(result.model)
    similarity = "dot"
    with torch.no_grad():
        model.history_bias.fill_(0.0)
    same = evaluate(SeqRecRecommender(model, similarity), dataset, "test")
    assert np.array_equal(same.ranks, evaluate(SeqRecRecommender(plain, similarity), dataset, "test").ranks)
    with torch.no_grad():
        model.history_bias.fill_(-1e6)  # histories fit max_len and targets are never in them: exclude_history
    excluded = evaluate(SeqRecRecommender(plain, similarity), dataset, "test", EvalSettings(exclude_history=True))
    assert np.array_equal(evaluate(SeqRecRecommender(model, similarity), dataset, "test").ranks, excluded.ranks)


def test_python_api_and_export_with_the_bias(tmp_path):
    result = train(tmp_path, epochs=1, history_bias="learned_last")
    recommender = Recommender.from_run(result.run_dir)
    history = [["i1", "i2", "i3"]]
    rows = [np.array([1, 2, 3])]
    want = SeqRecRecommender(result.model.eval(), "dot").score(rows)[:, 1:].numpy()
    assert np.allclose(recommender.score(history), want, atol=1e-5)
    plain = SeqRecRecommender(without_bias(result.model), "dot").score(rows)[:, 1:].numpy()
    b, b_last = float(result.model.history_bias.detach()), float(result.model.last_item_bias.detach())
    assert np.allclose(recommender.score(history)[0, :3] - plain[0, :3], [b, b, b + b_last], atol=1e-5)
    shown = recommender.recommend(histories=history, k=N_ITEMS, exclude_seen=False, with_titles=False)
    assert np.allclose(shown.set_index("item_id").loc[["i1", "i2", "i3"], "score"], want[0, :3], atol=1e-5)

    exported = export_run(result.run_dir)
    assert exported.max_abs_diff <= 1e-4
    from semrec.bundle import Bundle

    bundle = Bundle.load(result.run_dir)
    assert bundle.metadata["history_bias"] == pytest.approx(b)
    assert bundle.metadata["last_item_bias"] == pytest.approx(b_last)
    assert bundle.metadata["config"]["model"]["history_bias"] == "learned_last"
    assert left_pad(rows, MAX_LEN).shape == (1, MAX_LEN)
