"""The non-neural baselines (SKNN, V-SKNN, co-occurrence) in `semrec bench quality`: their own rows in both
tables and bars in the popularity-group figure, with the numbers `semrec eval sknn|vsknn|cooc` gives under the
same protocol, whether the grid evaluates them or reports them from those commands' results files."""

from __future__ import annotations

from pathlib import Path

import pytest
from semrec.results import read_results
from semrec_worker.commands import eval_knn
from semrec_worker.experiments import grid
from semrec_worker.experiments.config import QualityConfig

DATA = "synthetic:users=300,items=200,avg_len=10,seed=1"
BASELINES = {"sknn": "SKNN", "vsknn": "V-SKNN", "cooc": "Co-occurrence"}


def _config(tmp_path: Path, **overrides) -> QualityConfig:
    settings = dict(data=DATA, methods=["popularity", *BASELINES], backbones=["gru4rec", "sasrec"], seeds=[0],
                    isolate=False, runs_dir=tmp_path / "runs", results=tmp_path / "quality.json")  # fmt: skip
    return QualityConfig(**{**settings, **overrides})


def _eval_baselines(tmp_path: Path, split: str = "test", append: bool = False) -> dict[tuple[str, str], object]:
    """(method, protocol) -> the RunResult of `semrec eval <method>` with its default settings."""
    out = tmp_path / "baselines.json"
    runs = []
    for i, (command, config) in enumerate(((eval_knn.eval_sknn, eval_knn.EvalSKNNConfig),
                                           (eval_knn.eval_vsknn, eval_knn.EvalVSKNNConfig),
                                           (eval_knn.eval_cooc, eval_knn.EvalCoocConfig))):  # fmt: skip
        runs += command(config(data=DATA, split=split, results=out, append=append or i > 0))
    return {(str(r.method), str(r.protocol)): r for r in runs}


def _row(md: str, section: str, label: str) -> list[str]:
    table = md.split(section)[1].split("\n## ")[0]
    line = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")][1:]


def _bars(monkeypatch) -> dict[str, list[list[float]]]:
    """label -> the heights of each bar series the popularity-group figure draws with that label."""
    import matplotlib.axes

    drawn: dict[str, list[list[float]]] = {}
    real_bar = matplotlib.axes.Axes.bar

    def spy(self, xs, heights, *args, label=None, **kwargs):
        drawn.setdefault(label, []).append([float(h) for h in heights])
        return real_bar(self, xs, heights, *args, label=label, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", spy)
    return drawn


def _check_report(md: str, expected: dict, bars: dict) -> None:
    for method, label in BASELINES.items():
        full, sampled = expected[(method, "full")], expected[(method, "sampled100")]
        numbers = [f"{full.metrics[m]:.4f}" for m in ("ndcg@10", "recall@10", "mrr")]
        assert _row(md, "## A.", label) == numbers * 2  # the same number under each backbone
        numbers = [f"{sampled.metrics['ndcg@10']:.4f}", f"{sampled.metrics['recall@10']:.4f}",
                   f"{sampled.tail['ndcg@10']:.4f}", f"{sampled.tail['recall@10']:.4f}"]  # fmt: skip
        assert _row(md, "## B.", label) == numbers * 2
        groups = full.config["popularity_groups"]
        assert _row(md, "## C.", label) == ["(none)", *(f"{v:.4f}" for v in groups["ndcg@10"])]
        # full and sampled100 panels, one per backbone: the baseline's bars are its per-group NDCG@10
        assert bars[label] == [pytest.approx(groups["ndcg@10"], abs=1e-6)] * 2 + [
            pytest.approx(sampled.config["popularity_groups"]["ndcg@10"], abs=1e-6)] * 2
    assert "SKNN, V-SKNN, Co-occurrence" in md.split("Improv.: ")[1].splitlines()[0]


def test_the_grid_evaluates_the_baselines_as_semrec_eval_does(tmp_path: Path, monkeypatch):
    from semrec_worker.commands.bench_quality import bench_quality

    expected = _eval_baselines(tmp_path)
    bars = _bars(monkeypatch)
    out = bench_quality(_config(tmp_path, plots=True, figures=["popularity-groups"], images_dir=tmp_path / "img"))
    md = out.with_suffix(".md").read_text()
    _check_report(md, expected, bars)
    for method in BASELINES:  # each is a cell of its own, with per-case ranks for the figure
        assert (tmp_path / "runs" / method / "test_ranks.npz").exists()
        rows = [r for r in read_results(out).runs if r.method == method and r.protocol == "full"]
        assert {r.config.get("aggregate") for r in rows} == {None, "mean_std_over_seeds"}
        assert all(r.metrics["ndcg@10"] == pytest.approx(expected[(method, "full")].metrics["ndcg@10"], abs=1e-6)
                   for r in rows)


def test_report_only_takes_the_baselines_from_their_results_files(tmp_path: Path, monkeypatch):
    """A checkout with no cell directories: popularity from an earlier grid file, the baselines from the file
    `semrec eval` wrote (its validation-split runs, the settings sweep, are not used)."""
    from semrec_worker.commands.bench_quality import bench_quality

    bench_quality(_config(tmp_path, methods=["popularity"], results=tmp_path / "grid.json"))
    _eval_baselines(tmp_path, split="valid")
    expected = _eval_baselines(tmp_path, append=True)
    validation = [r for r in read_results(tmp_path / "baselines.json").runs if r.config["split"] == "valid"]
    assert len(validation) == 6 and all(
        r.metrics != expected[(str(r.method), str(r.protocol))].metrics for r in validation)

    def must_not_run(*args, **kwargs):
        raise AssertionError("a recorded cell was evaluated again")

    monkeypatch.setattr(grid, "run_reference_cell", must_not_run)
    bars = _bars(monkeypatch)
    config = _config(tmp_path, runs_dir=tmp_path / "empty", report_only=True, plots=True,
                     figures=["popularity-groups"], images_dir=tmp_path / "img",
                     recorded=[tmp_path / "grid.json", tmp_path / "baselines.json"])  # fmt: skip
    out = bench_quality(config)
    md = out.with_suffix(".md").read_text()
    _check_report(md, expected, bars)
    recorded = md.split("earlier results file")[1]
    assert f"- `sknn`: from {tmp_path / 'baselines.json'}" in recorded
    assert f"- `popularity`: from {tmp_path / 'grid.json'}" in recorded
    assert "## Missing cells\n\n(none)" in md


def test_recorded_takes_one_file_or_several():
    assert QualityConfig(recorded="a.json").recorded == [Path("a.json")]
    assert QualityConfig(recorded=None).recorded == []
    assert QualityConfig(recorded=["a.json", "b.json"]).recorded == [Path("a.json"), Path("b.json")]


def test_grid_cells_take_the_settings_chosen_on_the_datasets_own_validation(monkeypatch):
    from semrec_worker.data.dataset import load_dataset
    from semrec_worker.evaluation.jobs import EvalJobConfig
    from semrec_worker.models import knn, knn_settings

    dataset = load_dataset(EvalJobConfig(data=DATA))
    assert knn.cooc_reference(dataset, None)[2] == knn_settings.COOC_DEFAULTS
    tuned = {"window": 2, "history": 1, "decay": 1.0, "symmetric": False}
    monkeypatch.setitem(knn_settings.TUNED, dataset.name, {"cooc": tuned})
    model, name, settings = knn.cooc_reference(dataset, None)
    assert (name, settings) == ("cooc", tuned)
    assert model.history == 1 and knn.sknn_reference(dataset, None)[2] == knn_settings.SKNN_DEFAULTS


def test_a_recorded_llmseqsim_run_reports_the_llmseqsim_cell(tmp_path: Path):
    """`semrec eval llmseqsim` names its runs after the variant chosen on validation (llmseqsim-last-cosine[...])."""
    from semrec.results import RunResult, write_results
    from semrec_worker.experiments.recorded import load_recorded

    def run(method: str, protocol: str) -> RunResult:
        return RunResult(dataset="d", method=method, protocol=protocol, metrics={"ndcg@10": 0.1}, config={})

    write_results(tmp_path / "r.json", [run("llmseqsim-last-cosine[minilm]", "full"), run("llmseqsimx", "full"),
                                        run("popularity", "full")])  # fmt: skip
    recorded = load_recorded([tmp_path / "r.json"], "d")
    assert [r.method for r in recorded.cell_runs("llmseqsim", None, None, None)] == ["llmseqsim-last-cosine[minilm]"]
    assert [r.method for r in recorded.cell_runs("popularity", None, None, None)] == ["popularity"]


def test_the_group_table_says_when_its_groups_cover_fewer_seeds_than_the_row():
    from semrec_worker.experiments.tables import Aggregate, popularity_group_table

    def aggregate(backbone: str, with_ranks: int) -> Aggregate:
        groups = {"ndcg@10": [0.1, 0.2], "recall@10": [0.2, 0.3], "cases": [5.0, 7.0],
                  "seeds_with_ranks": [float(with_ranks)]}  # fmt: skip
        return Aggregate("random", backbone, "full", [0, 1, 2], {}, {}, popularity_groups=groups)

    config = QualityConfig(data=DATA, methods=["random"], backbones=["sasrec", "gru4rec"])
    lines = popularity_group_table([aggregate("sasrec", 1), aggregate("gru4rec", 3)], config)
    rows = {line.split("|")[2].strip(): line for line in lines[2:]}
    assert set(rows) == {"sasrec (groups: 1 of 3 seeds)", "gru4rec"}
