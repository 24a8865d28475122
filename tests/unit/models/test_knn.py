"""The non-neural baselines against hand-computed scores on tiny data, and through the shared protocol."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from semrec_worker.commands.eval_knn import (
    EvalCoocConfig,
    EvalSKNNConfig,
    EvalVSKNNConfig,
    eval_cooc,
    eval_sknn,
    eval_vsknn,
)
from semrec_worker.data.dataset import SequenceDataset
from semrec_worker.evaluation import EvalSettings, evaluate
from semrec_worker.methods import registry
from semrec_worker.models.knn import CooccurrenceRecommender, SessionKNN

A, B, C = [1, 2, 3], [2, 4], [5]
SESSIONS = [np.array(s) for s in (A, B, C)]


def scores(model, history) -> np.ndarray:
    return model.score([np.array(history)])[0, 1:].numpy()


def test_sknn_scores_are_sums_of_cosines_of_the_k_nearest_sessions():
    # query {2, 3}: cos with A = 2 / sqrt(2 * 3), with B = 1 / sqrt(2 * 2) = 0.5, with C = 0
    cos_a = 2 / math.sqrt(6)
    one = SessionKNN(SESSIONS, 5, k=1, popularity_tiebreak=False)
    np.testing.assert_allclose(scores(one, [2, 3]), [cos_a, cos_a, cos_a, 0, 0])
    two = SessionKNN(SESSIONS, 5, k=2, popularity_tiebreak=False)
    np.testing.assert_allclose(scores(two, [2, 3]), [cos_a, cos_a + 0.5, cos_a, 0.5, 0])


def test_a_users_own_session_is_never_its_neighbour():
    model = SessionKNN(SESSIONS, 5, k=1, popularity_tiebreak=False)
    # the query equals A: A is skipped, B is the nearest (cos 1 / sqrt(3 * 2)), not A (cos 1)
    np.testing.assert_allclose(scores(model, A), [0, 1 / math.sqrt(6), 0, 1 / math.sqrt(6), 0])


def test_vsknn_weighs_recent_items_where_sknn_ignores_order():
    sknn = SessionKNN(SESSIONS, 5, k=1, popularity_tiebreak=False)
    # SKNN: cos with A = 1 / sqrt(6) < cos with B = 1 / 2, whatever the order: B's items win both times
    for history in ([4, 1], [1, 4]):
        np.testing.assert_allclose(scores(sknn, history), [0, 0.5, 0, 0.5, 0])
    div = SessionKNN(SESSIONS, 5, k=1, weighting="div", popularity_tiebreak=False)
    # div: the most recent item weighs 1, the one before 1/2: [4, 1] -> sim(A) = w(1) = 1 > sim(B) = w(4) = 0.5
    np.testing.assert_allclose(scores(div, [4, 1]), [1, 1, 1, 0, 0])
    np.testing.assert_allclose(scores(div, [1, 4]), [0, 1, 0, 1, 0])
    linear = SessionKNN(SESSIONS, 5, k=2, weighting="linear", popularity_tiebreak=False)
    # linear over t = 3 items [5, 4, 1]: w(5) = 1/3, w(4) = 2/3, w(1) = 1 -> A: 1, B: 2/3, C: 1/3 (k = 2: A, B)
    np.testing.assert_allclose(scores(linear, [5, 4, 1]), [1, 1 + 2 / 3, 1, 2 / 3, 0])


def test_cooccurrence_counts_pairs_within_the_window_weighted_by_their_gap():
    sessions = [np.array([1, 2, 3]), np.array([2, 3])]
    # window 2: (1,2) 1, (2,3) 1 + 1, (1,3) at gap 2: 1/2
    model = CooccurrenceRecommender(sessions, 4, window=2, history=1, popularity_tiebreak=False)
    np.testing.assert_allclose(scores(model, [4, 1]), [0, 1, 0.5, 0])
    np.testing.assert_allclose(scores(model, [2]), [0, 0, 2, 0])
    # the last two items vote, the older one with decay 0.5: 1 * C[2] + 0.5 * C[1]
    two = CooccurrenceRecommender(sessions, 4, window=2, history=2, decay=0.5, popularity_tiebreak=False)
    np.testing.assert_allclose(scores(two, [1, 2]), [0, 0.5, 2 + 0.25, 0])
    narrow = CooccurrenceRecommender(sessions, 4, window=1, popularity_tiebreak=False)
    np.testing.assert_allclose(scores(narrow, [1]), [0, 1, 0, 0])
    both = CooccurrenceRecommender(sessions, 4, window=1, symmetric=True, popularity_tiebreak=False)
    np.testing.assert_allclose(scores(both, [2]), [1, 0, 2, 0])


def test_popularity_orders_only_the_ties():
    sessions = [np.array([1, 2]), np.array([3, 3, 3, 4]), np.array([4, 3])]
    model = CooccurrenceRecommender(sessions, 4, window=1)
    out = scores(model, [1])
    # 2 follows 1 (score 1); 3 (4 occurrences) and 4 (2) never follow 1: they tie at 0, popularity orders them
    assert out[1] > out[2] > out[3] > out[0]
    assert abs(out[2] - out[3]) < 1e-5
    assert model.score([np.array([1])])[0, 0] == -torch.inf


def _dataset(sequences) -> SequenceDataset:
    n_items = max(max(s) for s in sequences)
    return SequenceDataset("toy", [f"i{k}" for k in range(1, n_items + 1)], [], [f"u{u}" for u in range(len(sequences))],
                           [np.array(s) for s in sequences])


def test_fit_sees_only_what_precedes_the_split_and_ranks_pessimistically():
    # user 0's test target is 4 (history [1, 2]); user 1's session [1, 2, 4] precedes its test item 5
    data = _dataset([[1, 2, 4], [1, 2, 4, 5], [3, 5, 3]])
    model = SessionKNN.fit(data, "test", k=1, popularity_tiebreak=False)
    histories, targets = data.split("test")
    # user 0: the only other session sharing items is user 1's [1, 2, 4] (cos 2 / sqrt(2 * 3)): 1, 2, 4 tie
    # at the top; pessimistic ties put the target 4 at rank 2 (0-based)
    result = evaluate(model, data, "test", EvalSettings(protocol="full"))
    assert targets[0] == 4 and result.ranks[0] == 2
    # for validation the fit stops one item earlier: user 1's session is [1, 2], so nothing votes for 4
    for_test = SessionKNN.fit(data, "test", k=2, popularity_tiebreak=False)
    valid_model = SessionKNN.fit(data, "valid", k=2, popularity_tiebreak=False)
    assert scores(for_test, [1])[3] == pytest.approx(1 / math.sqrt(3)) and scores(valid_model, [1])[3] == 0
    assert histories[0].tolist() == [1, 2]


@pytest.mark.parametrize(("runner", "config_class", "method"), [
    (eval_sknn, EvalSKNNConfig, "sknn"), (eval_vsknn, EvalVSKNNConfig, "vsknn"), (eval_cooc, EvalCoocConfig, "cooc")])
def test_eval_commands_write_both_protocols_for_either_split(tmp_path, runner, config_class, method):
    out = tmp_path / "r.json"
    data = "synthetic:users=300,items=200,avg_len=10,seed=1"
    runner(config_class(data=data, results=out, split="valid"))
    test_runs = runner(config_class(data=data, results=out, append=True))
    rows = json.loads(out.read_text())["runs"]
    assert [(r["method"], r["protocol"], r["config"]["split"]) for r in rows] == [
        (method, "full", "valid"), (method, "sampled100", "valid"), (method, "full", "test"), (method, "sampled100", "test")]
    assert rows[0]["metrics"] != rows[2]["metrics"]
    assert 0 < test_runs[0].metrics["recall@10"] <= 1


def test_registry_lists_the_baselines_as_references(tiny_synthetic):
    for name in ("sknn", "vsknn", "cooc"):
        spec = registry.get(name)
        assert spec.baseline and not spec.has_backbone
        model, reported, _ = spec.reference.load()(tiny_synthetic, None)
        assert reported == name
        assert model.score(tiny_synthetic.split("test")[0][:3]).shape == (3, tiny_synthetic.n_items + 1)
