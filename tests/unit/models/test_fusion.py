"""Late score fusion (models/fusion.py) and `semrec eval hybrid`: weights chosen on validation only."""

import copy
import json

import numpy as np
import pytest
import torch
from semrec.cli import build_app
from semrec_worker.models.fusion import HistoryFloor, ScoreFusion, standardised
from semrec_worker.training import SeqRecConfig, train_seqrec
from typer.testing import CliRunner

DATA = "synthetic:users=300,items=200,avg_len=10,seed=1"


class Fixed:
    """A scorer that returns the same rows whatever the histories."""

    def __init__(self, rows):
        self.rows = torch.as_tensor(rows, dtype=torch.float64)

    def score(self, histories):
        return self.rows[: len(histories)].clone()


def test_rows_are_z_scored_over_what_the_part_can_score():
    rows = torch.tensor([[0.0, 1.0, 2.0, 3.0, -torch.inf], [5.0, 2.0, 2.0, 2.0, 6.0]])
    z = standardised(rows)
    assert torch.isinf(z[:, 0]).all() and z[0, 4] == -torch.inf
    finite = z[0, 1:4]
    assert finite.mean().item() == pytest.approx(0.0) and finite.std(unbiased=False).item() == pytest.approx(
        1.0
    )
    # column 0 (padding) never enters the statistics: row 1 is z-scored over [2, 2, 2, 6]
    assert z[1, 4].item() == pytest.approx((6 - 3) / np.sqrt(3.0))


def test_fusion_is_the_weighted_sum_of_z_scores_and_keeps_what_a_part_cannot_score():
    a = Fixed([[0.0, 1.0, 2.0, 3.0, -torch.inf]])
    b = Fixed([[0.0, 30.0, 10.0, 20.0, 40.0]])  # another scale entirely
    fused = ScoreFusion([(a, 1.0), (b, 0.5)]).score([np.array([1])])
    expected = standardised(a.score([0])) + 0.5 * standardised(b.score([0]))
    torch.testing.assert_close(fused[0, 1:4], expected[0, 1:4])
    assert fused[0, 0] == -torch.inf and fused[0, 4] == -torch.inf
    # weight 0: the first part's order alone
    alone = ScoreFusion([(a, 1.0), (b, 0.0)]).score([np.array([1])])
    assert torch.argsort(alone[0, 1:4]).tolist() == [0, 1, 2]


def test_history_floor_gives_the_history_no_vote_but_keeps_it_rankable():
    text = Fixed([[0.0, 1.0, 0.2, 0.9, 0.5], [0.0, 0.3, 0.4, 0.1, 0.8]])
    scores = HistoryFloor(text).score([np.array([1, 3]), np.array([], dtype=np.int64)])
    assert scores[0, 1].item() == pytest.approx(0.2) and scores[0, 3].item() == pytest.approx(0.2)
    assert scores[0, 4].item() == pytest.approx(0.5) and torch.isfinite(scores[0, 1:]).all()
    torch.testing.assert_close(scores[1], text.score([0, 1])[1])  # an empty history changes nothing


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_synthetic_shared):
    out = tmp_path_factory.mktemp("hybrid") / "run"
    config = SeqRecConfig(data=DATA, out=out, backbone="sasrec", loss="said_cosine", dim=16, max_len=12, epochs=1,
                          threads=1, batch_size=64, lr=5e-3)  # fmt: skip
    train_seqrec(config, dataset=copy.deepcopy(tiny_synthetic_shared))
    return out


def test_eval_hybrid_chooses_on_validation_and_scores_test_once(run_dir, tmp_path):
    out = tmp_path / "hybrid.json"
    result = CliRunner().invoke(
        build_app(),
        [
            "eval",
            "hybrid",
            "--run",
            str(run_dir),
            "--partners",
            "cooc",
            "--weights",
            "0,1,4",
            "--protocols",
            "full",
            "--results",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(out.read_text())["runs"]
    hybrid = row["config"]["hybrid"]
    assert [t["weights"]["cooc"] for t in hybrid["valid"]] == [0.0, 1.0, 4.0]
    best = max(hybrid["valid"], key=lambda t: t["ndcg@10"])
    assert hybrid["weights"] == best["weights"]
    assert row["method"].endswith("+cooc") and row["protocol"] == "full"
    assert set(row["config"]["popularity_groups"]) and 0 <= row["metrics"]["ndcg@10"] <= 1
    # the run alone (weight 0) scores on validation what `semrec eval run --split valid` gives
    alone = tmp_path / "alone.json"
    CliRunner().invoke(build_app(), ["eval", "run", "--run", str(run_dir), "--protocols", "full", "--split", "valid",
                                     "--results", str(alone)])  # fmt: skip
    (valid_row,) = json.loads(alone.read_text())["runs"]
    assert hybrid["valid"][0]["ndcg@10"] == pytest.approx(valid_row["metrics"]["ndcg@10"], abs=1e-6)


def test_eval_hybrid_tuning_only_writes_nothing_and_bad_flags_exit_2(run_dir, tmp_path):
    out = tmp_path / "none.json"
    result = CliRunner().invoke(
        build_app(),
        [
            "eval",
            "hybrid",
            "--run",
            str(run_dir),
            "--weights",
            "0,1",
            "--no-evaluate-test",
            "--results",
            str(out),
        ],
    )
    assert result.exit_code == 0 and "chosen on validation" in result.output and not out.exists()
    no_table = CliRunner().invoke(
        build_app(), ["eval", "hybrid", "--run", str(run_dir), "--partners", "llmseqsim"]
    )
    assert no_table.exit_code == 2 and "--text-table" in no_table.output
    missing = CliRunner().invoke(build_app(), ["eval", "hybrid", "--run", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "not a seqrec run" in missing.output


def test_eval_hybrid_with_a_text_partner_tries_every_weight_pair(run_dir, tmp_path, tiny_synthetic):
    from semrec.item_table import ItemTable

    vectors = np.random.default_rng(0).normal(size=(tiny_synthetic.n_items, 8)).astype(np.float32)
    table = ItemTable(list(tiny_synthetic.item_ids), vectors, {"method": "text"}).save(tmp_path / "text.npz")
    out = tmp_path / "hybrid.json"
    result = CliRunner().invoke(build_app(), ["eval", "hybrid", "--run", str(run_dir), "--partners", "cooc,llmseqsim",
                                              "--text-table", str(table), "--weights", "0,1", "--protocols",
                                              "full,sampled100", "--results", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["runs"]
    assert [r["protocol"] for r in rows] == ["full", "sampled100"]
    tried = [(t["weights"]["cooc"], t["weights"]["llmseqsim"]) for t in rows[0]["config"]["hybrid"]["valid"]]
    assert tried == [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)]


def test_popularity_prior_scores_log_counts_for_every_history():
    from semrec_worker.models.fusion import PopularityPrior

    scores = PopularityPrior(np.array([0, 3, 0, 7])).score([np.array([1]), np.array([2, 3])])
    assert scores.shape == (2, 4)
    torch.testing.assert_close(scores[1], torch.log1p(torch.tensor([0.0, 3.0, 0.0, 7.0], dtype=torch.float64)))


def test_one_pass_weight_grid_ranks_equal_fusion_evaluated_one_weighting_at_a_time(tiny_synthetic):
    from semrec_worker.evaluation.protocol import EvalSettings, evaluate
    from semrec_worker.experiments.fusion_search import (
        TailConstraint,
        choose,
        score_weightings,
        weight_grid_ranks,
    )
    from semrec_worker.models.fusion import PopularityPrior

    rng = np.random.default_rng(3)
    n = tiny_synthetic.n_items + 1

    class Random:
        def __init__(self, seed):
            self.table = torch.as_tensor(np.random.default_rng(seed).normal(size=(n, 6)))

        def score(self, histories):  # a history-dependent part: the mean of its items' rows against all rows
            rows = torch.stack([self.table[torch.as_tensor(h)].mean(0) for h in histories])
            return rows @ self.table.T

    parts = [Random(1), Random(2), PopularityPrior(tiny_synthetic.item_counts("valid"))]
    weightings = [(1.0, 0.0, 0.0), (1.0, 0.5, -0.25), (1.0, float(rng.uniform()), -1.0)]
    for exclude in (False, True):
        grid = weight_grid_ranks(parts, weightings, tiny_synthetic, "valid", exclude_history=exclude, batch_size=37)
        for k, weights in enumerate(weightings):
            single = evaluate(ScoreFusion(list(zip(parts, weights, strict=True))), tiny_synthetic, "valid",
                              EvalSettings(protocol="full", exclude_history=exclude))  # fmt: skip
            np.testing.assert_array_equal(grid[k], single.ranks)
    scored = score_weightings(parts, weightings, tiny_synthetic, "valid", n_groups=4)
    assert [len(s.group_ndcg) for s in scored] == [4, 4, 4]
    best = choose(scored)
    assert best.metrics["ndcg@10"] == max(s.metrics["ndcg@10"] for s in scored)
    # a share nobody reaches leaves no choice; without a margin the constraint is the plain per-group floor
    reference = scored[1]
    assert choose(scored, TailConstraint(reference, ratio=100.0)) is None
    plain = TailConstraint(reference, ratio=1.0)
    floors = reference.group_ndcg[:-1]
    only = [s for s in scored if all(g >= f for g, f in zip(s.group_ndcg[:-1], floors, strict=True))]
    assert reference in only
    assert choose(scored, plain).metrics["ndcg@10"] == max(s.metrics["ndcg@10"] for s in only)


def _weighting(case_ndcg, case_groups):
    from semrec_worker.experiments.fusion_search import Weighting

    case_ndcg, case_groups = np.asarray(case_ndcg, dtype=np.float64), np.asarray(case_groups)
    groups = [float(case_ndcg[case_groups == g].mean()) for g in range(case_groups.max() + 1)]
    return Weighting((1.0,), {"ndcg@10": float(case_ndcg.mean())}, groups, case_ndcg, case_groups)


def test_tail_margin_is_a_lower_confidence_bound_of_the_paired_difference():
    from semrec_worker.experiments.fusion_search import TailConstraint, case_ndcg, choose

    np.testing.assert_allclose(case_ndcg(np.array([0, 1, 9, 10, 500])), [1.0, 1 / np.log2(3), 1 / np.log2(11), 0, 0])
    groups = np.array([0, 0, 0, 0, 1, 1])  # group 1 is the head: never constrained
    text = _weighting([0.5, 0.5, 0.0, 0.0, 0.2, 0.0], groups)
    steady = _weighting([0.55, 0.55, 0.05, 0.05, 0.0, 0.0], groups)  # +0.05 on every group-0 case: no spread
    lucky = _weighting([1.0, 0.2, 0.1, 0.0, 0.9, 0.9], groups)  # +0.075 on average, from one case
    for z in (0.0, 1.64):
        constraint = TailConstraint(text, ratio=1.0, confidence=z)
        d = lucky.case_ndcg[:4] - text.case_ndcg[:4]
        (bound,) = constraint.lower_bounds(lucky)
        assert bound == pytest.approx(d.mean() - z * d.std(ddof=1) / 2.0)
        assert constraint.lower_bounds(steady) == pytest.approx([0.05])
    # without a margin both pass and the higher overall NDCG wins; with one, the lucky margin does not hold
    assert choose([steady, lucky], TailConstraint(text, 1.0)) is lucky
    assert choose([steady, lucky], TailConstraint(text, 1.0, confidence=1.64)) is steady
    with pytest.raises(ValueError, match="different cases"):
        TailConstraint(text, 1.0).lower_bounds(_weighting([0.1, 0.2], np.array([0, 1])))


def test_eval_hybrid_tail_ratio_constrains_the_choice_on_validation(run_dir, tmp_path, tiny_synthetic):
    from semrec.item_table import ItemTable

    vectors = np.random.default_rng(0).normal(size=(tiny_synthetic.n_items, 8)).astype(np.float32)
    table = ItemTable(list(tiny_synthetic.item_ids), vectors, {"method": "text"}).save(tmp_path / "text.npz")
    out = tmp_path / "tail.json"
    args = ["eval", "hybrid", "--run", str(run_dir), "--partners", "llmseqsim,popularity", "--text-table", str(table),
            "--weights", "0,1,4", "--popularity-weights", "0,-1", "--protocols", "full", "--popularity-groups", "2"]
    result = CliRunner().invoke(build_app(), [*args, "--tail-ratio", "0.5", "--results", str(out)])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(out.read_text())["runs"]
    hybrid = row["config"]["hybrid"]
    assert len(hybrid["valid"]) == 6 and {t["weights"]["popularity"] for t in hybrid["valid"]} == {0.0, -1.0}
    # the reference is the text partner as fused (history items get no vote), not its raw model
    from semrec_worker.commands.eval_hybrid import EvalHybridConfig, _text_similarity
    from semrec_worker.experiments.fusion_search import score_weightings
    from semrec_worker.models.fusion import HistoryFloor

    text_model = _text_similarity(EvalHybridConfig(run=run_dir, partners=["llmseqsim"], text_table=str(table)),
                                  tiny_synthetic)  # fmt: skip
    (as_fused,) = score_weightings([HistoryFloor(text_model)], [[1.0]], tiny_synthetic, "valid", n_groups=2)
    (raw,) = score_weightings([text_model], [[1.0]], tiny_synthetic, "valid", n_groups=2)
    assert hybrid["text_valid_group_ndcg@10"] == pytest.approx(as_fused.group_ndcg)
    assert as_fused.group_ndcg != pytest.approx(raw.group_ndcg)  # the distinction is exercised
    floors = [0.5 * t for t in hybrid["text_valid_group_ndcg@10"][:-1]]
    eligible = [t for t in hybrid["valid"] if all(g >= f for g, f in zip(t["group_ndcg@10"], floors, strict=False))]
    assert eligible and hybrid["weights"] == max(eligible, key=lambda t: t["ndcg@10"])["weights"]
    assert all(len(t["tail_lower_bounds"]) == 1 for t in hybrid["valid"]) and hybrid["tail_confidence"] == 0.0
    chosen = next(t for t in hybrid["valid"] if t["weights"] == hybrid["weights"])
    assert chosen["tail_lower_bounds"][0] == pytest.approx(chosen["group_ndcg@10"][0] - floors[0])
    impossible = CliRunner().invoke(build_app(), [*args, "--tail-ratio", "1000"])
    assert impossible.exit_code == 2 and "--tail-ratio" in impossible.output
    # a margin of many standard errors rules out what the plain floor admitted
    strict = CliRunner().invoke(build_app(), [*args, "--tail-ratio", "0.5", "--tail-confidence", "1000"])
    assert strict.exit_code == 2 and "--tail-confidence 1000" in strict.output
    alone = CliRunner().invoke(build_app(), [*args, "--tail-confidence", "1.64"])
    assert alone.exit_code == 2 and "give --tail-ratio too" in alone.output
    no_text = CliRunner().invoke(build_app(), ["eval", "hybrid", "--run", str(run_dir), "--tail-ratio", "0.9"])
    assert no_text.exit_code == 2 and "needs --partners llmseqsim" in no_text.output
