"""LLMSeqSim: the paper's session aggregations (mean / linear / decay / last) and similarities (cosine / dot /
Euclidean) against hand-computed rankings, the shared history rule, the variant chosen on validation (test never
read), and `semrec eval llmseqsim` through the shared protocol."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from semrec.errors import UserError
from semrec.item_table import ItemTable
from semrec_worker.data.dataset import SequenceDataset
from semrec_worker.data.records import Item
from semrec_worker.evaluation import EvalSettings, evaluate
from semrec_worker.methods.llmseqsim import LLMSeqSim, select_on_valid
from typer.testing import CliRunner

# Items 1..4 on the unit circle at 0, 90, 180 and 45 degrees (row 0 = padding).
ITEMS = np.array([[0, 0], [1, 0], [0, 1], [-1, 0], [np.sqrt(0.5), np.sqrt(0.5)]], dtype=np.float32)
# Items of different norms, where the three similarity measures disagree.
RAW = np.array([[0, 0], [1, 0], [0, 1], [3, 1], [0.8, 0.6], [-1, 0]], dtype=np.float32)


def ranking(model: LLMSeqSim, history: list[int]) -> list[int]:
    scores = model.score([np.array(history)])[0]
    return [int(i) for i in torch.argsort(scores[1:], descending=True) + 1]


def test_session_embeddings_mean_last_decay_linear():
    history = [np.array([1, 2])]
    mean = LLMSeqSim(ITEMS, "mean").session_embeddings(history)[0]
    last = LLMSeqSim(ITEMS, "last").session_embeddings(history)[0]
    decay = LLMSeqSim(ITEMS, "decay", decay=0.5).session_embeddings(history)[0]
    assert torch.allclose(mean, torch.tensor([np.sqrt(0.5), np.sqrt(0.5)], dtype=torch.float32), atol=1e-6)
    assert torch.allclose(last, torch.tensor([0.0, 1.0]), atol=1e-6)
    expected = torch.nn.functional.normalize(torch.tensor([0.5, 1.0]), dim=0)  # weights 0.5 (older), 1 (newest)
    assert torch.allclose(decay, expected, atol=1e-6)
    _, linear = LLMSeqSim(ITEMS, "linear").session_weights([np.array([3, 1, 2])])
    _, decayed = LLMSeqSim(ITEMS, "decay", decay=0.5).session_weights([np.array([3, 1, 2])])
    assert torch.allclose(linear[0], torch.tensor([1 / 3, 2 / 3, 1.0]))  # w_k = k / t
    assert torch.allclose(decayed[0], torch.tensor([0.25, 0.5, 1.0]))  # w_k = lambda^(t - k)


def test_similarity_measures_rank_as_computed_by_hand():
    # history (2, 1), linear weights (1/2, 1): session = (0.5 * (0, 1) + (1, 0)) / 1.5 = (2/3, 1/3)
    dot = LLMSeqSim(RAW, "linear", "dot")
    assert torch.allclose(dot.session_embeddings([np.array([2, 1])])[0], torch.tensor([2 / 3, 1 / 3]))
    # dot: 3 -> 7/3, 4 -> 0.733, 1 -> 0.667, 2 -> 0.333, 5 -> -0.667
    assert ranking(dot, [2, 1]) == [3, 4, 1, 2, 5]
    # Euclidean distance to (2/3, 1/3): 4 -> 0.298, 1 -> 0.471, 2 -> 0.943, 5 -> 1.70, 3 -> 2.43
    euclid = LLMSeqSim(RAW, "linear", "euclidean")
    assert ranking(euclid, [2, 1]) == [4, 1, 2, 5, 3]
    assert euclid.score([np.array([2, 1])])[0, 1].item() == pytest.approx(-np.sqrt(2) / 3, abs=1e-6)
    # cosine to (2, 1)/sqrt(5): 3 -> 0.990, 4 -> 0.984, 1 -> 0.894, 2 -> 0.447, 5 -> -0.894
    assert ranking(LLMSeqSim(RAW, "linear", "cosine"), [2, 1]) == [3, 4, 1, 2, 5]
    assert ranking(LLMSeqSim(RAW, "last", "euclidean"), [2, 1]) == [1, 4, 2, 5, 3]
    # for unit vectors the three measures rank alike
    for history in ([1, 1, 4], [3], [2, 4, 4]):  # histories without ties
        orders = {tuple(ranking(LLMSeqSim(ITEMS, "mean", sim), history)) for sim in ("cosine", "dot", "euclidean")}
        assert len(orders) == 1


def test_history_follows_the_protocol_unless_skipped():
    model = LLMSeqSim(ITEMS, "mean")  # default: the shared protocol's rule (no masking in the model)
    scores = model.score([np.array([1, 2]), np.array([3])])
    assert scores.shape == (2, 5)
    assert torch.isinf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()
    assert scores[0].argmax().item() == 4  # 45 degrees sits between items 1 and 2
    assert scores[1].argmax().item() == 3  # the last item itself is the most similar when nothing masks it
    skipped = LLMSeqSim(ITEMS, "mean", skip_history=True).score([np.array([1, 2]), np.array([3])])
    assert torch.isinf(skipped[0, [0, 1, 2]]).all() and torch.isinf(skipped[1, [0, 3]]).all()
    assert skipped[1, 2] > skipped[1, 1]  # 90 degrees is closer to 180 than 0 degrees is


def _two_user_dataset() -> SequenceDataset:
    vectors = np.array([[1, 0], [0, 1], [0.8, 0.6], [0.6, 0.8]], dtype=np.float32)
    ids = ["a", "b", "c", "d"]
    dataset = SequenceDataset("hand", ids, [Item(i) for i in ids], ["u", "v"],
                              [np.array([2, 1, 3, 4]), np.array([2, 1, 3, 4])])  # fmt: skip
    dataset._vectors = vectors  # type: ignore[attr-defined]
    return dataset


def test_variant_is_chosen_on_validation_and_test_is_not_read(monkeypatch):
    dataset = _two_user_dataset()
    table = ItemTable(dataset.item_ids, dataset._vectors)  # type: ignore[attr-defined]
    read = []
    real_split = SequenceDataset.split
    monkeypatch.setattr(SequenceDataset, "split", lambda self, which: read.append(which) or real_split(self, which))
    # valid case: history (2, 1), target 3, history masked by the protocol.
    # last: session (1, 0) -> 3 (0.8) beats 4 (0.6): rank 0, NDCG 1.
    # mean: session (0.71, 0.71) -> 3 and 4 tie at 0.99 (ties pessimistic): rank 1, NDCG 1/log2(3).
    selection = select_on_valid(table, dataset, ["mean", "last"], ["cosine"], exclude_history=True)
    assert set(read) == {"valid"}
    assert selection.chosen == "last-cosine"
    assert selection.valid_scores == pytest.approx({"mean-cosine": 1 / np.log2(3), "last-cosine": 1.0}, abs=1e-6)
    record = selection.record()
    assert record["combine"] == "last" and record["similarity"] == "cosine" and "valid" in record["selected_on"]


def test_window_uses_only_recent_items():
    model = LLMSeqSim(ITEMS, "mean", window=1)
    assert torch.allclose(model.session_embeddings([np.array([1, 2])])[0], torch.tensor([0.0, 1.0]))


def test_bad_settings_are_user_errors():
    with pytest.raises(UserError):
        LLMSeqSim(ITEMS, "median")
    with pytest.raises(UserError):
        LLMSeqSim(ITEMS, decay=0.0)
    with pytest.raises(UserError, match="similarity"):
        LLMSeqSim(ITEMS, similarity="manhattan")


def test_from_table_refuses_a_table_of_another_dataset(tiny_synthetic):
    table = ItemTable(["x", "y"], np.eye(2))
    with pytest.raises(UserError, match="lacks"):
        LLMSeqSim.from_table(table, tiny_synthetic)


def test_evaluated_by_the_shared_protocol(tiny_synthetic):
    rng = np.random.default_rng(0)
    table = ItemTable(tiny_synthetic.item_ids, rng.normal(size=(tiny_synthetic.n_items, 8)))
    model = LLMSeqSim.from_table(table, tiny_synthetic, combine="decay", skip_history=True)
    result = evaluate(model, tiny_synthetic, "test", EvalSettings(protocol="full"))
    assert result.n_cases == tiny_synthetic.n_users
    # the same ranks by numpy: decayed mean of the history's unit vectors, cosine to every item, history masked
    histories, targets = tiny_synthetic.split("test")
    vectors = table.vectors / np.linalg.norm(table.vectors, axis=1, keepdims=True)
    cosine = np.empty((len(histories), tiny_synthetic.n_items))
    for row, history in enumerate(histories):
        weights = model.decay ** np.arange(len(history) - 1, -1, -1)
        session = (vectors[history - 1] * weights[:, None]).sum(0)
        cosine[row] = vectors @ (session / np.linalg.norm(session))
        cosine[row, history - 1] = -np.inf  # the history is never recommended
    target = cosine[np.arange(len(targets)), targets - 1]
    ranks = (cosine >= target[:, None]).sum(1) - 1
    np.testing.assert_array_equal(result.ranks, ranks)
    assert result.metrics["ndcg@10"] == pytest.approx(np.where(ranks < 10, 1 / np.log2(ranks + 2), 0).mean())


def test_eval_command_writes_results(tmp_path, tiny_synthetic):
    from semrec.cli import build_app

    data = "synthetic:users=300,items=200,avg_len=10,seed=1"
    table = ItemTable(tiny_synthetic.item_ids, np.random.default_rng(1).normal(size=(tiny_synthetic.n_items, 8)),
                      {"method": "random"})  # fmt: skip
    table.save(tmp_path / "t.npz")
    out = tmp_path / "r.json"
    args = ["eval", "llmseqsim", "--data", data, "--table", str(tmp_path / "t.npz"), "--combine", "mean,last",
            "--similarity", "cosine,dot", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    runs = json.loads(out.read_text())["runs"]
    config = runs[0]["config"]
    assert set(config["valid_scores"]) == {"mean-cosine", "mean-dot", "last-cosine", "last-dot"}
    chosen = max(config["valid_scores"], key=config["valid_scores"].get)
    assert config["variant"] == chosen  # the best validation score, and only it reaches test
    assert [(r["method"], r["protocol"]) for r in runs] == [
        (f"llmseqsim-{chosen}[random]", "full"), (f"llmseqsim-{chosen}[random]", "sampled100"),
    ]  # fmt: skip
    assert all("ndcg@10" in r["metrics"] and r["tail"] for r in runs)
    bad = CliRunner().invoke(build_app(), ["eval", "llmseqsim", "--data", data, "--combine", "median"])
    assert bad.exit_code == 2 and "combine" in bad.output
    bad = CliRunner().invoke(build_app(), ["eval", "llmseqsim", "--data", data, "--similarity", "l1"])
    assert bad.exit_code == 2 and "similarity" in bad.output


def test_grid_reference_chooses_on_validation(tmp_path, tiny_synthetic):
    from semrec_worker.experiments.config import QualityConfig
    from semrec_worker.methods.llmseqsim import grid_reference

    table = ItemTable(tiny_synthetic.item_ids, np.random.default_rng(2).normal(size=(tiny_synthetic.n_items, 8)),
                      {"method": "random"})  # fmt: skip
    path = table.save(tmp_path / "t.npz")
    grid = QualityConfig(data="synthetic:users=300,items=200,avg_len=10,seed=1", tables=[f"llmseqsim={path}"],
                         llmseqsim_combine=["mean", "last"], llmseqsim_similarity=["cosine", "euclidean"])
    model, name, extra = grid_reference(tiny_synthetic, grid)
    assert set(extra["valid_scores"]) == {"mean-cosine", "mean-euclidean", "last-cosine", "last-euclidean"}
    assert extra["variant"] == max(extra["valid_scores"], key=extra["valid_scores"].get)
    assert name == f"llmseqsim-{extra['variant']}[random]" and model.variant == extra["variant"]
    assert not model.skip_history  # the grid's history rule (--exclude-history) applies, as to every backbone
