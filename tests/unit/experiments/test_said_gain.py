"""`semrec bench said-gain`: stage 2 from every snapshot of a tiny SAID run, validation only, cells reused, the
figure drawn from the results rows."""

from __future__ import annotations

import pytest
import torch
from semrec.cli import build_app
from semrec.results import RunResult, read_results
from semrec_worker.experiments import said_gain
from semrec_worker.experiments.config import SAIDGainConfig
from semrec_worker.lm import load_language_model
from semrec_worker.methods.said.settings import TrainSAIDConfig
from semrec_worker.methods.said.snapshots import read_index
from semrec_worker.methods.said.trainer import train_said
from split_guards import NoTestSplit
from typer.testing import CliRunner

torch.set_num_threads(1)
DATA = "synthetic:users=300,items=200,avg_len=10,seed=1"
CELL = dict(dim=16, max_len=10, batch_size=64, lr=5e-3, dropout=0.0, epochs=1, threads=1)


@pytest.fixture(scope="module")
def said_run(tmp_path_factory, tiny_synthetic_shared):
    """A tiny SAID stage-1 run with three snapshots (step 0 and two epochs)."""
    out = tmp_path_factory.mktemp("said") / "run"
    config = TrainSAIDConfig(data=DATA, llm="tiny", out=out, epochs=2, max_caption_tokens=8, eval_items=4,
                             batch_size=32, threads=1, projector="table", snapshot_tables=True)
    train_said(config, dataset=tiny_synthetic_shared, lm=load_language_model("tiny"))
    assert len(read_index(out)) == 3
    return out


def test_bench_trains_one_cell_per_snapshot_and_backbone_and_never_reads_test(tmp_path, said_run, tiny_synthetic,
                                                                              monkeypatch):
    config = SAIDGainConfig(data=DATA, said_run=said_run, backbones=["sasrec", "gru4rec"], seeds=[0], **CELL)
    guarded = NoTestSplit(tiny_synthetic)
    cells = said_gain.run(config, guarded, tmp_path / "runs")
    snapshots = read_index(said_run)
    assert len(cells) == 2 * (1 + len(snapshots))
    assert [(c.backbone, c.label) for c in cells] == [
        (b, label) for b in ("sasrec", "gru4rec") for label in ["random", *(f"step{s['step']}" for s in snapshots)]]
    assert "valid" in guarded.reads and "test" not in guarded.reads
    assert not any((tmp_path / "runs").rglob("results.json")) and not any((tmp_path / "runs").rglob("test_ranks.npz"))
    for cell in cells:  # each snapshot cell started from its own table
        job = said_gain.cell_config(cell, config)
        assert job.evaluate_test is False and job.backbone == cell.backbone and job.lr == CELL["lr"]
        assert job.init == "random" if cell.snapshot is None else job.init.endswith(f"{cell.label}/item_table.npz")
    runs = said_gain.rows(cells, tiny_synthetic.name, config)
    assert len(runs) == len(cells) and all(r.config["split"] == "valid" for r in runs)
    for row in runs:
        if row.method == "said":
            ref = next(r for r in runs if r.method == "random" and r.backbone == row.backbone and r.seed == row.seed)
            assert row.config["gain_ndcg@10"] == pytest.approx(row.metrics["ndcg@10"] / ref.metrics["ndcg@10"] - 1)
            snap = next(s for s in snapshots if s["step"] == row.config["snapshot_step"])
            assert row.config["word_accuracy"] == snap["word_accuracy"]
    # a rerun trains nothing: every cell is read back from its run directory
    monkeypatch.setattr(said_gain, "train_seqrec", lambda *a, **k: pytest.fail("a finished cell was retrained"))
    again = said_gain.run(config, guarded, tmp_path / "runs")
    assert all(c.reused for c in again) and [c.done.valid for c in again] == [c.done.valid for c in cells]


def test_figure_and_table_come_from_the_results_rows(tmp_path, monkeypatch):
    def row(backbone, method, ndcg, step=None, acc=None, gain=None) -> RunResult:
        config = {"split": "valid"}
        if method == "said":
            config |= {"snapshot_step": step, "snapshot_epoch": step / 10, "word_accuracy": acc, "exact_match": 0.0,
                       "gain_ndcg@10": gain, "gain_recall@10": gain}
        return RunResult(dataset="d", method=method, backbone=backbone, seed=0, protocol="full",
                         metrics={"ndcg@10": ndcg, "recall@10": 2 * ndcg}, config=config)

    runs = [row("sasrec", "random", 0.1), row("sasrec", "said", 0.11, 0, 0.05, 0.1),
            row("sasrec", "said", 0.12, 10, 0.4, 0.2), row("gru4rec", "random", 0.1),
            row("gru4rec", "said", 0.09, 0, 0.05, -0.1)]
    drawn = {}
    monkeypatch.setattr(said_gain, "plot_said_gain", lambda curves, path, name: drawn.update(curves) or path)
    said_gain.figure(runs, tmp_path / "fig.png", "d")
    assert [(p["step"], p["word_accuracy"], p["gain_ndcg@10"]) for p in drawn["sasrec"]] == [(0, 0.05, 0.1),
                                                                                         (10, 0.4, 0.2)]
    assert [p["step"] for p in drawn["gru4rec"]] == [0]
    monkeypatch.undo()
    assert said_gain.figure(runs, tmp_path / "fig.png", "d").stat().st_size > 0
    table = said_gain.markdown(runs)
    assert "| sasrec | said step 10 | 10 |" in table and "+20.0%" in table and "-10.0%" in table


def test_cli_writes_results_and_figure_and_rejects_a_run_without_snapshots(tmp_path, said_run):
    out, images = tmp_path / "gain.json", tmp_path / "images"
    args = ["bench", "said-gain", "--data", DATA, "--said-run", str(said_run), "--backbones", "gru4rec",
            "--seeds", "0", "--runs-dir", str(tmp_path / "runs"), "--results", str(out), "--images-dir", str(images),
            "--lr", "5e-3", "--dropout", "0.0", "--epochs", "1", "--dim", "16", "--max-len", "10", "--threads", "1"]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    runs = read_results(out).runs
    assert len(runs) == 1 + len(read_index(said_run)) and (images / f"said-gain-{runs[0].dataset}.png").exists()
    assert "machine:" in result.output and "settings: semrec bench said-gain" in result.output
    assert "| gru4rec | said step 0 |" in result.output
    assert all(r.config["command"].startswith("semrec bench said-gain ") and f"--said-run {said_run}" in
               r.config["command"] for r in runs)
    bad = CliRunner().invoke(build_app(), ["bench", "said-gain", "--data", DATA, "--said-run", str(tmp_path)])
    assert bad.exit_code == 2 and "no table snapshots" in bad.output
