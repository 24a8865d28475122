"""`semrec eval plot-groups`: one figure of a metric by item-popularity group for named series of results files.

The grid's own figure (`semrec bench quality --plots`) shows the grid's rows. This one puts any runs that kept a
per-group breakdown (`config.popularity_groups`: grid cells and aggregates, `semrec eval hybrid|cooc|...`) side
by side, e.g. a fused model beside LLMSeqSim and the random-init backbone. A series is `LABEL=FILE:METHOD` or
`LABEL=FILE:METHOD/BACKBONE`; its bars are the file's aggregate row for that method when it has one (the grid's
mean over seeds), else the mean over the matching test-split runs.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from semrec.cli_builder import CommandGroups, config_command, echo
from semrec.config import JobConfig
from semrec.errors import UserError
from semrec.results import RunResult, read_results


class PlotGroupsConfig(JobConfig):
    series: list[str] = Field(..., description="bars, in order: LABEL=FILE:METHOD or LABEL=FILE:METHOD/BACKBONE (a results JSON's runs)")
    out: Path = Field(..., description="the PNG to write")
    protocol: str = Field("full", description="protocol of the runs shown")
    metric: str = Field("ndcg@10", description="metric per group (ndcg@10 or recall@10)")
    title: str = Field("", description="figure title (default: the dataset of the first series)")


def _parse(spec: str) -> tuple[str, Path, str, str | None]:
    label, sep, rest = spec.partition("=")
    path, sep2, selector = rest.rpartition(":")
    if not (sep and sep2 and label and path and selector):
        raise UserError(f"--series {spec!r}: expected LABEL=FILE:METHOD or LABEL=FILE:METHOD/BACKBONE")
    method, _, backbone = selector.partition("/")
    return label, Path(path), method, backbone or None


def series_groups(spec: str, protocol: str, metric: str) -> tuple[str, list[float], list[float], RunResult]:
    """(label, per-group means of `metric`, cases per group, one of the runs) of one series."""
    label, path, method, backbone = _parse(spec)
    if not path.exists():
        raise UserError(f"--series {label}: no results file {path}")
    runs = read_results(path).runs
    matched = [r for r in runs if r.method == method and (backbone is None or r.backbone == backbone)
               and r.protocol == protocol and r.config.get("split", "test") == "test"
               and r.config.get("popularity_groups")]  # fmt: skip
    if not matched:
        have = sorted({f"{r.method}/{r.backbone}" for r in runs if r.config.get("popularity_groups")})
        raise UserError(f"--series {label}: {path} has no {protocol} test run of {method}"
                        f"{'/' + backbone if backbone else ''} with per-group metrics (it has: {', '.join(have)})")
    chosen = [r for r in matched if r.config.get("aggregate")][:1] or matched
    groups = [r.config["popularity_groups"] for r in chosen]
    if any(metric not in g for g in groups):
        raise UserError(f"--series {label}: no per-group {metric} in {path}")
    n_groups = len(groups[0][metric])
    means = [sum(g[metric][k] for g in groups) / len(groups) for k in range(n_groups)]
    return label, means, list(groups[0]["cases"]), chosen[0]


def plot_groups(config: PlotGroupsConfig) -> dict[str, list[float]]:
    from semrec_worker.experiments.plots import plot_group_series

    if not config.series:
        raise UserError("--series: give at least one LABEL=FILE:METHOD")
    series: dict[str, list[float]] = {}
    cases: list[float] | None = None
    dataset = None
    for spec in config.series:
        label, means, group_cases, run = series_groups(spec, config.protocol, config.metric)
        if label in series:
            raise UserError(f"--series: the label {label!r} is used twice")
        if cases is not None and group_cases != cases:
            raise UserError(f"--series {label}: its cases per group {group_cases} differ from the first series' "
                            f"{cases} (another dataset or split)")
        cases, dataset = group_cases, dataset or run.dataset
        series[label] = means
        echo(f"{label}: {config.metric} by group " + " ".join(f"{m:.4f}" for m in means))
    assert cases is not None
    config.out.parent.mkdir(parents=True, exist_ok=True)
    title = config.title or f"{dataset}: {config.metric} by item-popularity group ({config.protocol} ranking)"
    plot_group_series(series, cases, config.out, title, config.metric)
    echo(f"figure written to {config.out}")
    return series


def register(groups: CommandGroups) -> None:
    config_command(
        groups.eval,
        "plot-groups",
        PlotGroupsConfig,
        plot_groups,
        "One figure of NDCG@10 (or Recall@10) by item-popularity group for named series of results files "
        "(grid cells, hybrids, baselines side by side).",
    )
