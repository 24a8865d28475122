"""`semrec demo`: the main job end to end on the embedded synthetic catalogue."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from semrec.cli_builder import CommandGroups, config_command, echo
from semrec.config import JobConfig


class DemoConfig(JobConfig):
    data: str = Field("synthetic", description="dataset (default: the embedded synthetic catalogue)")
    workdir: Path = Field(Path("runs/demo"), description="where the demo writes its runs")


def demo(config: DemoConfig) -> None:
    from semrec_worker.commands.data import DataStatsConfig, data_stats
    from semrec_worker.commands.evaluate import EvalJobConfig, eval_popularity

    echo("== 1/2 dataset")
    data_stats(DataStatsConfig(data=config.data))
    echo("== 2/2 popularity baseline (full ranking and sampled-100)")
    eval_popularity(EvalJobConfig(data=config.data, out=config.workdir / "popularity.json"))


def register(groups: CommandGroups) -> None:
    config_command(groups.root, "demo", DemoConfig, demo, "Run the main job end to end on the embedded default.")
