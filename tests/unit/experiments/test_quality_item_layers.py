"""The item-layer axis of `semrec bench quality` (`--item-layers`) on tiny synthetic data: each table method's cells
in each mode, in their own directories, reused by mode and never under another mode's label, one report row per
method x mode (tables, figure, results JSON) that `--recorded` reads back; and `--tables` checked before any cell
trains."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from semrec.cli import build_app
from semrec.errors import UserError
from semrec.item_table import ItemTable
from semrec.results import read_results
from semrec_worker.data import load_dataset
from semrec_worker.experiments import grid, modes
from semrec_worker.experiments.config import QualityConfig
from typer.testing import CliRunner

DATA = "synthetic:users=300,items=200,avg_len=10,seed=1"
MODES = ["init", "frozen", "dual-sum"]
NAMES = ["popularity", "random", "llm2x", "llm2x+frozen", "llm2x+dual-sum"]
LABELS = ["Popularity", "Random", "LLM2X", "LLM2X (frozen)", "LLM2X (dual, sum)"]


def _config(tmp_path: Path, **overrides) -> QualityConfig:
    settings = dict(data=DATA, methods=["popularity", "random", "llm2x"], backbones=["sasrec"], seeds=[0],
                    item_layers=MODES, epochs=1, dim=16, text_encoder="tiny", isolate=False,
                    runs_dir=tmp_path / "runs", results=tmp_path / "a.json")  # fmt: skip
    return QualityConfig(**{**settings, **overrides})


def _rows(md: str, section: str) -> dict[str, list[str]]:
    table = md.split(section)[1].split("\n## ")[0]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("| ")]
    return {row[0]: row[1:] for row in cells[1:]}  # label -> its cells (the header row left out)


def _saved_layer(cell: Path) -> dict:
    return json.loads((cell / "config.json").read_text())["config"]["model"]["items"]


def _must_not_run(*args, **kwargs):
    raise AssertionError("a finished or recorded cell was trained again")


def test_each_mode_is_its_own_cell_row_and_bar_reused_by_mode_and_recorded(tmp_path: Path, monkeypatch):
    import matplotlib.axes
    from semrec_worker.commands.bench_quality import bench_quality

    bars: dict[str, int] = {}
    real_bar = matplotlib.axes.Axes.bar

    def spy(self, xs, heights, *args, label=None, **kwargs):
        bars[label] = bars.get(label, 0) + 1
        return real_bar(self, xs, heights, *args, label=label, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", spy)
    out = bench_quality(_config(tmp_path, plots=True, figures=["popularity-groups"], images_dir=tmp_path / "img"))
    runs = tmp_path / "runs"
    dirs = {"llm2x": ("init", None), "llm2x+frozen": ("frozen", None), "llm2x+dual-sum": ("dual", "sum")}
    for name, (layer, fusion) in dirs.items():
        items = _saved_layer(runs / name / "sasrec" / "seed0")
        assert items["item_layer"] == layer and (fusion is None or items["fusion"] == fusion)
        assert all(r.method == "llm2x" for r in read_results(runs / name / "sasrec" / "seed0" / "results.json").runs)
    assert sorted(p.name for p in runs.iterdir()) == ["llm2x", "llm2x+dual-sum", "llm2x+frozen", "popularity",
                                                      "random"]  # random and popularity: one cell each, no modes
    assert sorted(p.name for p in (runs / "llm2x").iterdir()) == ["sasrec", "table"]  # one table for every mode

    written = read_results(out).runs
    per_seed = [r for r in written if "aggregate" not in r.config]
    assert sorted({str(r.method) for r in per_seed}) == sorted(NAMES)
    for run in per_seed:  # each row names its cell: the mode's directory, and its item layer in its config
        method, mode = modes.split(str(run.method))
        assert run.config["cell"].endswith(f"{modes.cell_name(method, mode)}/sasrec/seed0") or method == "popularity"
        if method == "llm2x":
            assert modes.mode_of(run.config["item_layer"], run.config["fusion"]) == mode
    aggregates = {(r.method, r.protocol): r for r in written if r.config.get("aggregate")}
    assert {m for m, _ in aggregates} == set(NAMES)

    md = out.with_suffix(".md").read_text()
    for section, protocol in (("## A.", "full"), ("## B.", "sampled100")):
        rows = _rows(md, section)
        assert list(rows) == [*LABELS, "Improv."]  # one row per method x mode
        for name, label in zip(NAMES, LABELS, strict=True):
            assert rows[label][0].split()[0] == f"{aggregates[(name, protocol)].metrics['ndcg@10']:.4f}"  # then ‡
    ndcg = {name: aggregates[(name, "full")].metrics["ndcg@10"] for name in NAMES}
    llm = max(NAMES[2:], key=lambda n: ndcg[n])
    base = max(NAMES[:2], key=lambda n: ndcg[n])
    change = 100 * (ndcg[llm] - ndcg[base]) / ndcg[base]
    assert _rows(md, "## A.")["Improv."][0] == f"{change:+.1f}% ({modes.label(llm)} vs {modes.label(base)})"
    assert list(_rows(md, "## C.")) == LABELS
    assert "LLM2X (dual, F)" not in md and "a row \"M (frozen)\"" in md and "Random: one row each" in md
    assert all(bars.get(label) == 2 for label in LABELS)  # full and sampled100 panels of the sasrec column

    # a second call trains nothing: every cell is reused under its own mode
    monkeypatch.setattr(grid, "_run_job", _must_not_run)
    monkeypatch.setattr(grid, "run_reference_cell", _must_not_run)
    again = bench_quality(_config(tmp_path))
    assert [(r.method, r.protocol, r.metrics) for r in read_results(again).runs] == [
        (r.method, r.protocol, r.metrics) for r in written]

    # a cell trained in another mode is never reported under this one; a run of an earlier version (no item layer
    # in its config) is an init cell
    frozen = runs / "llm2x+frozen" / "sasrec" / "seed0"
    saved = json.loads((frozen / "config.json").read_text())
    saved["config"]["model"]["items"].update(item_layer="dual", fusion="gate")
    (frozen / "config.json").write_text(json.dumps(saved))
    init = runs / "llm2x" / "sasrec" / "seed0"
    saved = json.loads((init / "config.json").read_text())
    del saved["config"]["model"]["items"]
    (init / "config.json").write_text(json.dumps(saved))
    bench_quality(_config(tmp_path, results=tmp_path / "b.json"))
    missing = (tmp_path / "b.md").read_text().split("## Missing cells")[1]
    assert "`llm2x+frozen/sasrec/seed0`: mismatch: config mismatch: item_layer='dual-gate' (grid: 'frozen')" in missing
    assert "`llm2x/sasrec/seed0`" not in missing
    assert _rows((tmp_path / "b.md").read_text(), "## A.")["LLM2X (frozen)"][0] == "-"

    # the results JSON alone rebuilds the report, modes included (the run directories are gone)
    shutil.rmtree(runs)
    rebuilt = bench_quality(_config(tmp_path, results=tmp_path / "c.json", recorded=[tmp_path / "a.json"]))
    after = read_results(rebuilt).runs
    assert [(r.method, r.seed, r.protocol, r.metrics) for r in after] == [
        (r.method, r.seed, r.protocol, r.metrics) for r in written]
    md_c = rebuilt.with_suffix(".md").read_text()
    assert md.split("## A.")[1].split("## Cells")[0] == md_c.split("## A.")[1].split("## Cells")[0]
    assert "- `llm2x+dual-sum/sasrec` seed0: from" in md_c


def _table(path: Path, method: str) -> Path:
    ItemTable([f"i{k}" for k in range(4)], np.eye(4, dtype=np.float32), {"method": method}).save(path)
    return path


def test_llmemb_in_other_modes_is_seqrec_on_its_scft_table_and_tslrec_keeps_its_native_cell(tmp_path: Path):
    scft, sasrec = _table(tmp_path / "scft.npz", "llmemb"), tmp_path / "sasrec-run"
    config = QualityConfig(data=DATA, methods=["llmemb", "tslrec"], backbones=["sasrec"], seeds=[0],
                           item_layers=["init", "dual-gate"], tables=[f"llmemb={scft}", f"sasrec={sasrec}"])  # fmt: skip
    cells = grid.plan(config, tmp_path / "runs")
    assert [c.label for c in cells] == ["llmemb/sasrec/seed0", "llmemb+dual-gate/sasrec/seed0", "tslrec/sasrec/seed0"]
    native, dual = (grid.backbone_job(c, config, tmp_path / "runs") for c in cells[:2])
    assert native[0] == "llmemb-rat" and native[1].scft == str(scft)
    command, job = dual
    assert command == "seqrec" and job.init == str(scft) and (job.item_layer, job.fusion) == ("dual", "gate")
    assert job.out == tmp_path / "runs" / "llmemb+dual-gate" / "sasrec" / "seed0"
    # without its init row, LLMEmb needs no pretrained SASRec: no prerequisite random cells; its frozen cell trains
    # and is reported under llmemb+frozen (a stand-in SCFT table: random rows, one per item, labelled llmemb)
    dataset = load_dataset(QualityConfig(data=DATA))
    rows = np.random.default_rng(0).normal(size=(dataset.n_items, 8)).astype(np.float32)
    ItemTable(dataset.item_ids, rows, {"method": "llmemb"}).save(scft)
    only_frozen = QualityConfig(data=DATA, methods=["llmemb"], backbones=["sasrec"], seeds=[0], item_layers=["frozen"],
                                tables=[f"llmemb={scft}"], epochs=1, dim=16, protocols=["full"], isolate=False)
    (cell,) = grid.run_grid(only_frozen, dataset, tmp_path / "runs")
    assert cell.label == "llmemb+frozen/sasrec/seed0" and cell.status == "trained"
    assert _saved_layer(cell.path)["item_layer"] == "frozen" and cell.runs[0].method == "llmemb"


def test_a_table_of_another_method_is_refused_before_any_cell_trains(tmp_path: Path):
    wrong = _table(tmp_path / "llm2x.npz", "llm2x")
    args = ["bench", "quality", "--data", DATA, "--methods", "random,llm2bert4rec", "--backbones", "bert4rec",
            "--seeds", "0", "--epochs", "1", "--dim", "16", "--tables", f"llm2bert4rec={wrong}",
            "--runs-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "q.json")]  # fmt: skip
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 2, result.output
    assert "built by 'llm2x'" in result.output and "semrec train llm2bert4rec" in result.output
    assert not (tmp_path / "runs").exists()  # not even the random cell that comes first

    right = _table(tmp_path / "l2b.npz", "llm2bert4rec")
    grid.check_tables(QualityConfig(methods=["llm2bert4rec"], tables=[f"llm2bert4rec={right}"]))
    # LLMEmb's native cell reads its SCFT table through RAT; its seqrec cells (other modes) are checked
    grid.check_tables(QualityConfig(methods=["llmemb"], tables=[f"llmemb={wrong}"]))
    with pytest.raises(UserError, match="built by 'llm2x'"):
        grid.check_tables(QualityConfig(methods=["llmemb"], tables=[f"llmemb={wrong}"], item_layers=["init", "frozen"]))
