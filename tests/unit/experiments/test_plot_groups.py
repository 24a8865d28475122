"""`semrec eval plot-groups`: named series of results files, one figure of a metric by popularity group."""

import pytest
from semrec.cli import build_app
from semrec.results import RunResult, write_results
from typer.testing import CliRunner

CASES = [30.0, 20.0, 50.0]


def _run(method, seed, ndcg, *, backbone="sasrec", protocol="full", aggregate=False, cases=CASES):
    config = {"popularity_groups": {"ndcg@10": ndcg, "recall@10": [2 * v for v in ndcg], "cases": cases}}
    if aggregate:
        config["aggregate"] = "mean_std_over_seeds"
    return RunResult(dataset="toy", method=method, backbone=backbone, protocol=protocol, seed=seed,
                     metrics={"ndcg@10": sum(ndcg) / 3}, config=config)  # fmt: skip


@pytest.fixture
def files(tmp_path):
    grid = tmp_path / "grid.json"
    write_results(grid, [
        _run("random", 0, [0.0, 0.1, 0.4]), _run("random", 1, [0.2, 0.3, 0.6]),
        _run("random", None, [0.5, 0.5, 0.5], aggregate=True),  # the grid's aggregate wins over its seeds
        _run("llmseqsim", None, [0.3, 0.3, 0.1], backbone=None),
        _run("random", 0, [0.9, 0.9, 0.9], protocol="sampled100"),
    ])  # fmt: skip
    hybrid = tmp_path / "hybrid.json"
    write_results(hybrid, [_run("fused", 0, [0.1, 0.2, 0.3]), _run("fused", 1, [0.3, 0.4, 0.5])])
    return grid, hybrid


def test_series_take_the_aggregate_or_the_mean_of_the_seeds_and_write_one_figure(files, tmp_path):
    grid, hybrid = files
    out = tmp_path / "fig" / "groups.png"
    series = ["random=" + f"{grid}:random/sasrec", f"text={grid}:llmseqsim", f"fused={hybrid}:fused"]
    result = CliRunner().invoke(build_app(), ["eval", "plot-groups", "--series", ",".join(series), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "random: ndcg@10 by group 0.5000 0.5000 0.5000" in result.output
    assert "text: ndcg@10 by group 0.3000 0.3000 0.1000" in result.output
    assert "fused: ndcg@10 by group 0.2000 0.3000 0.4000" in result.output

    from semrec_worker.commands.plot_groups import PlotGroupsConfig, plot_groups

    recall = plot_groups(PlotGroupsConfig(series=[f"fused={hybrid}:fused"], out=out, metric="recall@10"))
    assert recall["fused"] == pytest.approx([0.4, 0.6, 0.8])


def test_bad_series_exit_2_with_what_the_file_has(files, tmp_path):
    grid, hybrid = files
    out = str(tmp_path / "g.png")

    def invoke(*series):
        return CliRunner().invoke(build_app(), ["eval", "plot-groups", "--series", ",".join(series), "--out", out])

    missing = invoke(f"x={grid}:said/sasrec")
    assert missing.exit_code == 2 and "no full test run of said/sasrec" in missing.output
    assert "random/sasrec" in missing.output
    assert invoke(f"no-file={tmp_path / 'nope.json'}:random").exit_code == 2
    assert "expected LABEL=FILE:METHOD" in invoke("just-a-label").output
    assert "used twice" in invoke(f"a={grid}:random", f"a={hybrid}:fused").output
    other = tmp_path / "other.json"
    write_results(other, [_run("fused", 0, [0.1, 0.2, 0.3], cases=[1.0, 2.0, 3.0])])
    mismatch = invoke(f"a={grid}:random", f"b={other}:fused")
    assert mismatch.exit_code == 2 and "differ from the first series" in mismatch.output
