"""`semrec bench quality`: the grid on tiny synthetic data (cells, reuse, budget, missing cells, tables), and the
metrics by item-popularity group on a hand-computed case."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from semrec.results import read_results, write_results
from semrec_worker.data.records import Item
from semrec_worker.evaluation.popularity import metrics_by_group, popularity_groups
from semrec_worker.experiments import grid
from semrec_worker.experiments.config import QualityConfig
from semrec_worker.experiments.plots import top_level_categories

DATA = "synthetic:users=300,items=200,avg_len=10,seed=1"  # the tiny_synthetic fixture's data (150 items after 5-core)


def test_popularity_groups_and_their_metrics_by_hand():
    # items 1..6 with training counts 5, 1, 3, 0, 9, 2 -> ascending: 4 (0), 2 (1), 6 (2), 3 (3), 1 (5), 5 (9)
    groups = popularity_groups(np.array([0, 5, 1, 3, 0, 9, 2]), n_groups=3)
    assert groups.tolist() == [-1, 2, 0, 1, 0, 2, 1]
    targets = np.array([4, 2, 3, 1, 5, 5])
    ranks = np.array([0, 3, 1, 12, 0, 9])
    g0, g1, g2 = metrics_by_group(ranks, targets, groups, 3)
    assert g0["cases"] == 2 and g1["cases"] == 1 and g2["cases"] == 3
    assert g0["ndcg@10"] == pytest.approx((1 + 1 / math.log2(5)) / 2)
    assert g0["mrr"] == pytest.approx((1 + 1 / 4) / 2)
    assert g1["ndcg@10"] == pytest.approx(1 / math.log2(3))
    assert g2["ndcg@10"] == pytest.approx((0 + 1 + 1 / math.log2(11)) / 3)
    assert g2["recall@10"] == pytest.approx(2 / 3)
    assert g2["mrr"] == pytest.approx((1 / 13 + 1 + 1 / 10) / 3)


def test_top_level_category_of_flattened_and_list_categories():
    flat = [Item("a", categories=["Industrial & Scientific Tapes, Adhesives & Sealants Tapes Duct"]),
            Item("b", categories=["Industrial & Scientific Lab & Scientific Products Pipettes"]),
            Item("c", categories=["Industrial & Scientific Industrial Electrical Wiring"]),
            Item("d")]  # fmt: skip
    assert top_level_categories(flat) == ["Tapes, Adhesives & Sealants", "Lab & Scientific", "Industrial Electrical",
                                          "(none)"]  # fmt: skip
    genres = [Item("m", categories=["Animation", "Comedy"]), Item("n", categories=["Drama"])]
    assert top_level_categories(genres) == ["Animation", "Drama"]


def test_tables_flag_needs_method_equals_path():
    with pytest.raises(ValueError, match="method=PATH"):
        QualityConfig(tables=["said"])
    with pytest.raises(ValueError, match="method=PATH"):
        QualityConfig(tables=["popularity=x.npz"])


def _config(tmp_path: Path, **overrides) -> QualityConfig:
    settings = dict(data=DATA, methods=["popularity", "random", "llm2x"], backbones=["sasrec"], seeds=[0, 1],
                    epochs=2, dim=16, text_encoder="tiny", max_train_minutes=1e-6, isolate=False,
                    runs_dir=tmp_path / "runs", results=tmp_path / "quality.json")  # fmt: skip
    return QualityConfig(**{**settings, **overrides})


def test_grid_tables_equal_the_cells_then_reuse_budget_and_missing_cells(tmp_path: Path, monkeypatch):
    from semrec_worker.commands.bench_quality import bench_quality

    config = _config(tmp_path, plots=True, images_dir=tmp_path / "images")
    out = bench_quality(config)
    runs_dir = tmp_path / "runs"
    cells = [runs_dir / "popularity"] + [runs_dir / m / "sasrec" / f"seed{s}" for m in ("random", "llm2x") for s in (0, 1)]
    written = read_results(out).runs
    per_seed = [r for r in written if "aggregate" not in r.config]
    for cell in cells:
        for run in read_results(cell / "results.json").runs:
            match = [r for r in per_seed if r.config["cell"] == str(cell) and r.protocol == run.protocol]
            assert len(match) == 1 and match[0].metrics == run.metrics and match[0].tail == run.tail

    # the aggregate rows and the markdown hold the mean and std over the cells' seeds
    random_full = [read_results(runs_dir / "random" / "sasrec" / f"seed{s}" / "results.json").runs[0] for s in (0, 1)]
    assert all(r.protocol == "full" for r in random_full)
    values = [r.metrics["ndcg@10"] for r in random_full]
    aggregate = next(r for r in written if r.config.get("aggregate") and r.method == "random" and r.protocol == "full")
    assert aggregate.metrics["ndcg@10"] == pytest.approx(np.mean(values), abs=1e-6)
    assert aggregate.config["std"]["metrics"]["ndcg@10"] == pytest.approx(np.std(values, ddof=1), abs=1e-6)
    assert len(aggregate.config["popularity_groups"]["ndcg@10"]) == 5
    md = out.with_suffix(".md").read_text()
    assert f"| Random | {np.mean(values):.4f} ± {np.std(values, ddof=1):.4f} †" in md
    assert "Improv." in md and "vs" in md.split("Improv.")[1]

    # the budget (1e-6 min) stopped every backbone cell after its first epoch of 2: recorded and reported
    metrics = json.loads((runs_dir / "random" / "sasrec" / "seed0" / "metrics.json").read_text())
    assert metrics["cut_short"] is True and metrics["epochs_run"] == 1 and metrics["max_train_minutes"] == 1e-6
    assert metrics["epochs"][0]["partial"] is True  # stopped after the first of its 2 steps
    assert all(r.config["cut_short"] for r in read_results(runs_dir / "llm2x" / "sasrec" / "seed1" / "results.json").runs)
    assert "- `llm2x/sasrec/seed1`: training budget" in md
    images = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert images == ["quality-synthetic-u300-i200-s1-popularity-groups.png", "quality-synthetic-u300-i200-s1-tsne.png"]

    # a cell made by hand with only the full protocol and no per-case ranks (as `semrec train seqrec` wrote
    # them before): the grid re-evaluates its model.pt for sampled100 and leaves its own results.json alone
    hand = runs_dir / "random" / "sasrec" / "seed0"
    own = read_results(hand / "results.json").runs
    write_results(hand / "results.json", [r for r in own if r.protocol == "full"])
    (hand / "test_ranks.npz").unlink()

    # a second call trains nothing: every cell is reused
    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished cell was run again")

    monkeypatch.setattr(grid, "_run_job", must_not_run)
    monkeypatch.setattr(grid, "run_reference_cell", must_not_run)
    bench_quality(_config(tmp_path))
    again = read_results(out).runs
    assert [(r.method, r.seed, r.protocol) for r in again] == [(r.method, r.seed, r.protocol) for r in written]
    assert all(a.metrics == pytest.approx(b.metrics, abs=1e-6) for a, b in zip(again, written, strict=True))
    sampled = next(r for r in own if r.protocol == "sampled100")
    added = read_results(hand / grid.REEVALUATED).runs
    assert [r.protocol for r in added] == ["sampled100"]
    assert added[0].metrics == pytest.approx(sampled.metrics, abs=1e-6)
    assert [r.protocol for r in read_results(hand / "results.json").runs] == ["full"]

    # a cell that never ran (seed 2) and a cell whose config differs are missing: "-" / n=2, listed, never invented
    saved = json.loads((runs_dir / "llm2x" / "sasrec" / "seed1" / "config.json").read_text())
    saved["config"]["objective"]["loss"] = "full_ce"
    (runs_dir / "llm2x" / "sasrec" / "seed1" / "config.json").write_text(json.dumps(saved))
    bench_quality(_config(tmp_path, seeds=[0, 1, 2], report_only=True))
    md = out.with_suffix(".md").read_text()
    missing = md.split("## Missing cells")[1]
    assert "`random/sasrec/seed2`: missing: no results.json" in missing
    assert "`llm2x/sasrec/seed1`: mismatch: config mismatch: loss='full_ce'" in missing
    assert "(n=2)" in md.split("| Random |")[1].splitlines()[0]
    assert "(n=1)" in md.split("| LLM2X |")[1].splitlines()[0]
    assert not any(r.method == "llm2x" and r.seed == 1 for r in read_results(out).runs)

    # a grid with the learned history bias reuses none of the cells trained without it
    bench_quality(_config(tmp_path, seeds=[0], report_only=True, history_bias="learned"))
    missing = out.with_suffix(".md").read_text().split("## Missing cells")[1]
    assert "`random/sasrec/seed0`: mismatch: config mismatch: history_bias='none' (grid: 'learned')" in missing


def test_isolated_cell_runs_as_its_own_process_and_is_collected(tmp_path: Path):
    from semrec_worker.commands.bench_quality import bench_quality

    out = bench_quality(_config(tmp_path, methods=["random"], seeds=[0], isolate=True, max_train_minutes=None,
                                protocols=["full"], epochs=1))  # fmt: skip
    cell = tmp_path / "runs" / "random" / "sasrec" / "seed0"
    assert "semrec.cli train seqrec" in (cell / grid.LOG).read_text()
    assert read_results(cell / "results.json").runs[0].metrics == read_results(out).runs[0].metrics
    assert json.loads((cell / "metrics.json").read_text())["cut_short"] is False


def test_cells_whose_run_directories_are_gone_are_reported_from_the_recorded_results(tmp_path: Path, monkeypatch):
    import shutil

    from semrec.errors import UserError
    from semrec_worker.commands.bench_quality import bench_quality

    first = _config(tmp_path, methods=["popularity", "random"], max_train_minutes=None, epochs=1, results=tmp_path / "a.json")
    bench_quality(first)
    before = read_results(tmp_path / "a.json").runs
    shutil.rmtree(tmp_path / "runs")  # a fresh checkout: only the committed results file is left

    def must_not_run(*args, **kwargs):
        raise AssertionError("a recorded cell was trained again")

    monkeypatch.setattr(grid, "_run_job", must_not_run)
    monkeypatch.setattr(grid, "run_reference_cell", must_not_run)
    out = bench_quality(_config(tmp_path, methods=["popularity", "random"], max_train_minutes=None, epochs=1,
                                results=tmp_path / "b.json", recorded=tmp_path / "a.json"))  # fmt: skip
    after = read_results(out).runs
    assert [(r.method, r.seed, r.protocol, r.metrics) for r in after] == [
        (r.method, r.seed, r.protocol, r.metrics) for r in before]
    random_full = [(a, b) for a, b in zip(before, after, strict=True) if a.config.get("aggregate") and a.method == "random"]
    assert random_full and all(a.config["popularity_groups"] == b.config["popularity_groups"] for a, b in random_full)
    assert all(r.config["recorded_from"] == str(tmp_path / "a.json") for r in after if "aggregate" not in r.config)
    md_a, md_b = (tmp_path / "a.md").read_text(), out.with_suffix(".md").read_text()
    assert md_a.split("## A.")[1].split("## Cells")[0] == md_b.split("## A.")[1].split("## Cells")[0]
    assert "- `random/sasrec` seed0, seed1: from" in md_b.split("earlier results file")[1]

    with pytest.raises(UserError, match="not only"):
        bench_quality(_config(tmp_path, data="synthetic:users=300,items=200,avg_len=10,seed=2",
                              recorded=tmp_path / "a.json"))  # fmt: skip


def test_tslrec_cells_share_the_first_cells_stage1(tmp_path: Path):
    from semrec_worker.commands.bench_quality import bench_quality
    from semrec_worker.methods.tslrec.settings import TSLRecJobConfig

    bench_quality(_config(tmp_path, methods=["tslrec"], max_train_minutes=None, epochs=1, llm="tiny",
                          tslrec_sft_max_steps=2, stage1_max_train_minutes=30, protocols=["full"]))  # fmt: skip
    seed0, seed1 = (tmp_path / "runs" / "tslrec" / "sasrec" / f"seed{s}" for s in (0, 1))
    assert (seed0 / "tslrec" / "lora").is_dir() and not (seed1 / "tslrec" / "lora").exists()
    assert TSLRecJobConfig.load(seed1 / "tslrec", out=seed1).stage1 == seed0
    stage1 = TSLRecJobConfig.load(seed0 / "tslrec", out=seed0).tslrec
    assert stage1.sft_max_steps == 2 and stage1.sft_max_train_minutes == 30  # the grid's stage-1 budget reaches the SFT
    knowledge = [np.load(s / "tslrec" / "knowledge.npz")["knowledge"] for s in (seed0, seed1)]
    assert np.array_equal(*knowledge)
    assert read_results(seed1 / "results.json").runs[0].method == "tslrec"


def test_a_seed_still_improving_at_the_epoch_cap_is_marked():
    from semrec.results import RunResult
    from semrec_worker.experiments import tables

    def run(seed: int, best: int, ran: int) -> RunResult:
        return RunResult(dataset="d", method="random", backbone="sasrec", loss="said_cosine", protocol="full",
                         seed=seed, metrics={"ndcg@10": 0.1 * (seed + 1)},
                         config={"epochs": 20, "best_epoch": best, "epochs_run": ran})  # fmt: skip

    assert tables.at_epoch_cap(run(0, 20, 20)) and not tables.at_epoch_cap(run(0, 17, 20))
    assert not tables.at_epoch_cap(run(0, 12, 15))
    (converged,) = tables.aggregate([run(0, 12, 15), run(1, 17, 20)])
    (capped,) = tables.aggregate([run(0, 12, 15), run(1, 20, 20)])
    assert converged.capped_seeds == [] and capped.capped_seeds == [1]
    assert tables._cell_text(capped, "metrics", "ndcg@10", 2).endswith("‡")
    assert "‡" not in tables._cell_text(converged, "metrics", "ndcg@10", 2)
    cells = [grid.Cell("random", "sasrec", 0, Path("r"), status="recorded", runs=[run(0, 12, 15)]),
             grid.Cell("tslrec", "sasrec", 0, Path("t"), status="trained",
                       runs=[run(0, 31, 34).model_copy(update={"config": {"epochs": 60}})])]  # fmt: skip
    assert tables.epoch_caps(cells) == "epoch cap Random 20, TSLRec 60"
    assert tables.epoch_caps(cells[:1]) == "epochs=20"
