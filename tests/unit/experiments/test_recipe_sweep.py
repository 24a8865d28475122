"""`semrec bench recipe`: the coordinate-descent sweep on tiny synthetic data, validation only until the chosen
cell of each sweep is evaluated on test."""

from __future__ import annotations

import json
from pathlib import Path

from semrec.cli import build_app
from semrec.results import read_results
from semrec_worker.experiments import recipe
from semrec_worker.experiments.config import RECIPE_AXES, RecipeConfig
from typer.testing import CliRunner

DATA = "synthetic:users=300,items=200,avg_len=10,seed=1"


def test_sweep_visits_each_axis_from_the_best_so_far(tmp_path, monkeypatch):
    trained: list[dict] = []

    def fake_run(cell, config, init, dataset):  # scores that make full_ce, then lr 1e-3 win
        trained.append(dict(cell.settings))
        score = 0.1 + 0.05 * (cell.settings["loss"] == "full_ce") + 0.02 * (cell.settings["lr"] == 1e-3)
        cell.valid = {"ndcg@10": score, "recall@10": 2 * score}
        return cell

    monkeypatch.setattr(recipe, "run_cell", fake_run)
    config = RecipeConfig(data=DATA, losses=["said_cosine", "full_ce"], augments=["none", "reverse"],
                          dropouts=[0.5], lrs=[2e-3, 1e-3, 5e-3])
    cells = recipe.sweep(config, "sasrec", "random", None, tmp_path)
    assert [c.step for c in cells] == ["start", "loss", "augment", "lr", "lr"]
    assert trained[0] == {"loss": "said_cosine", "augment": "none", "dropout": 0.5, "lr": 2e-3, "dim": 256,
                          "max_len": 50}
    assert trained[2]["loss"] == "full_ce"  # the augmentation is tried on the loss that won
    assert all(t["loss"] == "full_ce" and t["augment"] == "none" for t in trained[3:])  # reverse lost (a tie)
    best = recipe.chosen(cells)
    assert best.settings["loss"] == "full_ce" and best.settings["lr"] == 1e-3
    assert len({c.path for c in cells}) == len(cells) and all(c.path.parent == tmp_path / "sasrec" / "random"
                                                              for c in cells)
    assert set(RECIPE_AXES) == set(trained[0])


def test_bench_recipe_on_synthetic_data(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "sweep.json"
    args = ["bench", "recipe", "--data", DATA, "--backbones", "gru4rec", "--losses", "said_cosine,full_ce",
            "--augments", "none,reverse", "--dropouts", "0.0", "--lrs", "5e-3", "--dims", "16", "--max-lens", "10",
            "--epochs", "2", "--patience", "1", "--runs-dir", str(runs), "--results", str(out)]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    doc = read_results(out)
    valid = [r for r in doc.runs if r.config["split"] == "valid"]
    test = [r for r in doc.runs if r.config["split"] == "test"]
    assert len(valid) == 3 and [r.config["sweep_step"] for r in valid] == ["start", "loss", "augment"]
    for row in valid:
        assert {"ndcg@10", "recall@10"} <= set(row.metrics)
        assert 1 <= row.config["best_epoch"] <= row.config["epochs_run"] <= 2 and row.config["seconds_per_epoch"] > 0
        metrics = json.loads((Path(row.config["run_dir"]) / "metrics.json").read_text())
        assert metrics["test_evaluated"] is False  # every cell trained without reading the test split
    # only the chosen cell (best validation NDCG@10) was evaluated on test, and only it holds test results
    best = max(valid, key=lambda r: r.metrics["ndcg@10"])
    assert len(test) == 1 and test[0].config["run_dir"] == best.config["run_dir"] and test[0].protocol == "full"
    with_results = sorted(p.parent for p in runs.rglob("results.json"))
    assert [str(p) for p in with_results] == [best.config["run_dir"]]
    assert [str(p.parent) for p in runs.rglob("test_ranks.npz")] == [best.config["run_dir"]]
    assert all(r.config["command"].startswith("semrec bench recipe --data ") and "--backbones gru4rec --dropouts 0.0"
               in r.config["command"] for r in doc.runs)
    table = out.with_suffix(".md").read_text()
    assert table.count("| gru4rec | random |") == 4 and f"**{best.metrics['ndcg@10']:.4f}**" in table
    # a rerun reuses every cell (nothing retrained) and gives the same file
    again = CliRunner().invoke(build_app(), args)
    assert again.exit_code == 0 and again.output.count("reused") == 3
    assert [r.metrics for r in read_results(out).runs] == [r.metrics for r in doc.runs]
