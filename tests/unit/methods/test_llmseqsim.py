"""LLMSeqSim: session embeddings (mean / last / decayed mean), cosine ranking, history never recommended,
and `semrec eval llmseqsim` through the shared protocol."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from semrec.errors import UserError
from semrec.item_table import ItemTable
from semrec_worker.evaluation import EvalSettings, evaluate
from semrec_worker.methods.llmseqsim import LLMSeqSim
from typer.testing import CliRunner

# Items 1..4 on the unit circle at 0, 90, 180 and 45 degrees (row 0 = padding).
ITEMS = np.array([[0, 0], [1, 0], [0, 1], [-1, 0], [np.sqrt(0.5), np.sqrt(0.5)]], dtype=np.float32)


def test_session_embeddings_mean_last_decay():
    history = [np.array([1, 2])]
    mean = LLMSeqSim(ITEMS, "mean").session_embeddings(history)[0]
    last = LLMSeqSim(ITEMS, "last").session_embeddings(history)[0]
    decay = LLMSeqSim(ITEMS, "decay", decay=0.5).session_embeddings(history)[0]
    assert torch.allclose(mean, torch.tensor([np.sqrt(0.5), np.sqrt(0.5)], dtype=torch.float32), atol=1e-6)
    assert torch.allclose(last, torch.tensor([0.0, 1.0]), atol=1e-6)
    expected = torch.nn.functional.normalize(torch.tensor([0.5, 1.0]), dim=0)  # weights 0.5 (older), 1 (newest)
    assert torch.allclose(decay, expected, atol=1e-6)


def test_scores_rank_by_cosine_and_skip_the_history():
    model = LLMSeqSim(ITEMS, "mean")
    scores = model.score([np.array([1, 2]), np.array([3])])
    assert scores.shape == (2, 5)
    assert torch.isinf(scores[0, [0, 1, 2]]).all() and torch.isinf(scores[1, [0, 3]]).all()
    assert scores[0].argmax().item() == 4  # 45 degrees sits between items 1 and 2
    assert scores[1, 2] > scores[1, 1]  # 90 degrees is closer to 180 than 0 degrees is
    kept = LLMSeqSim(ITEMS, "last", skip_history=False).score([np.array([2])])
    assert kept[0].argmax().item() == 2


def test_window_uses_only_recent_items():
    model = LLMSeqSim(ITEMS, "mean", window=1)
    assert torch.allclose(model.session_embeddings([np.array([1, 2])])[0], torch.tensor([0.0, 1.0]))


def test_bad_settings_are_user_errors():
    with pytest.raises(UserError):
        LLMSeqSim(ITEMS, "median")
    with pytest.raises(UserError):
        LLMSeqSim(ITEMS, decay=0.0)


def test_from_table_refuses_a_table_of_another_dataset(tiny_synthetic):
    table = ItemTable(["x", "y"], np.eye(2))
    with pytest.raises(UserError, match="lacks"):
        LLMSeqSim.from_table(table, tiny_synthetic)


def test_evaluated_by_the_shared_protocol(tiny_synthetic):
    rng = np.random.default_rng(0)
    table = ItemTable(tiny_synthetic.item_ids, rng.normal(size=(tiny_synthetic.n_items, 8)))
    model = LLMSeqSim.from_table(table, tiny_synthetic, combine="decay")
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
            "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    runs = json.loads(out.read_text())["runs"]
    assert [(r["method"], r["protocol"]) for r in runs] == [
        ("llmseqsim-mean[random]", "full"), ("llmseqsim-mean[random]", "sampled100"),
        ("llmseqsim-last[random]", "full"), ("llmseqsim-last[random]", "sampled100"),
    ]  # fmt: skip
    assert all("ndcg@10" in r["metrics"] and r["tail"] for r in runs)
    bad = CliRunner().invoke(build_app(), ["eval", "llmseqsim", "--data", data, "--combine", "median"])
    assert bad.exit_code == 2 and "combine" in bad.output
