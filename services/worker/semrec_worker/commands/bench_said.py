"""`semrec bench said`: the SAID stage-1 trainer vs a plain fp32 Hugging Face loop on the same items
(`semrec train said` itself: `train_tables`, from the method registry)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from semrec.cli_builder import CommandGroups, config_command

from semrec_worker.methods.said.settings import TrainSAIDConfig


class BenchSAIDConfig(TrainSAIDConfig):
    bench_items: int = Field(128, ge=1, description="items timed per loop (the same items for both loops)")
    warmup_steps: int = Field(2, ge=0, description="untimed steps before each loop")
    results: Path = Field(Path("results/said-throughput.json"), description="results JSON to write")


def bench_said(config: BenchSAIDConfig):
    from semrec_worker.methods.said.bench import run_bench  # torch only when the command runs

    run_bench(config)


def register(groups: CommandGroups) -> None:
    config_command(
        groups.bench,
        "said",
        BenchSAIDConfig,
        bench_said,
        "Stage-1 throughput: the SAID trainer vs a plain fp32 Hugging Face forward/backward loop (items/s).",
    )
