"""`semrec demo`: the main job end to end on the embedded synthetic catalogue.

dataset stats -> popularity baseline -> SAID stage 1 (a few epochs) -> SASRec initialised from the SAID
table -> ONNX bundle -> publish to a local redis-server -> ranker -> one /recommend printed -> a short
Locust run (p50/p99) -> everything it started is stopped. Each step is the same `semrec` command a user
would run, so the demo doubles as a walkthrough (the commands are printed).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import ClassVar

from pydantic import Field
from semrec.cli_builder import CommandGroups, config_command, echo
from semrec.config import JobConfig
from semrec.vocabulary import AcceptsOldNames, OldName

from semrec_worker.commands.data import DataStatsConfig, data_stats
from semrec_worker.commands.evaluate import EvalPopularityConfig, eval_popularity
from semrec_worker.serving_demo import semrec_cli, serve_and_load


class DemoConfig(AcceptsOldNames, JobConfig):
    old_names: ClassVar[dict[str, str | OldName]] = {
        "workdir": "out", "said_minutes": "said_max_train_minutes", "load_seconds": "load_duration_s"
    }

    data: str = Field("synthetic", description="dataset (default: the embedded synthetic catalogue)")
    out: Path = Field(Path("runs/demo"), description="directory the demo writes its runs into (wiped at start)")
    llm: str = Field("default", description="language model for SAID: 'default' (SmolLM2-135M), 'tiny', or a dir")
    said_epochs: int = Field(3, ge=1, description="SAID stage-1 epochs")
    said_max_train_minutes: float = Field(3.0, gt=0, description="training budget of SAID stage 1 (minutes)")
    seqrec_epochs: int = Field(30, ge=1, description="maximum SASRec epochs (early stopping on validation)")
    dim: int = Field(64, ge=2, description="SASRec width (the SAID table is reduced to it by PCA)")
    load_duration_s: float = Field(20.0, gt=0, description="length of the Locust run (seconds)")
    serve: bool = Field(True, description="publish, serve and load-test (needs redis-server)")
    threads: int | None = Field(None, ge=1, description="CPU threads of every step (default: torch's choice)")


def demo(config: DemoConfig) -> None:
    start = time.perf_counter()
    work = config.out
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    config.save(work / "demo_config.json")
    steps = 6 if config.serve else 5

    echo(f"== 1/{steps} dataset: {config.data}")
    data_stats(DataStatsConfig(data=config.data))
    echo(f"== 2/{steps} popularity baseline (full ranking and sampled-100)")
    eval_popularity(EvalPopularityConfig(data=config.data, results=work / "popularity.json", threads=config.threads))

    said, sasrec = work / "said", work / "sasrec"
    threads = ["--threads", str(config.threads)] if config.threads else []
    commands = [
        ("SAID stage 1: item prefixes through the frozen LM",
         ["train", "said", "--data", config.data, "--llm", config.llm, "--epochs", str(config.said_epochs),
          "--max-train-minutes", str(config.said_max_train_minutes), "--out", str(said), *threads]),
        ("SASRec initialised from the SAID table (SAID eq. 9 loss)",
         ["train", "seqrec", "--data", config.data, "--backbone", "sasrec", "--init", str(said / "item_table.npz"),
          "--loss", "said_cosine", "--dim", str(config.dim), "--epochs", str(config.seqrec_epochs),
          "--out", str(sasrec), *threads]),
        ("ONNX export of the sequence encoder + normalised item table",
         ["export", "onnx", "--run", str(sasrec), *threads]),
    ]
    for number, (title, args) in enumerate(commands, start=3):
        echo(f"== {number}/{steps} {title}\n   $ semrec {' '.join(args)}")
        semrec_cli(*args)
    if config.serve:
        echo(f"== 6/{steps} publish -> serve -> /recommend -> Locust")
        serve_and_load(sasrec, work / "serving", load_duration_s=config.load_duration_s)
    echo(f"demo finished in {time.perf_counter() - start:.0f} s; runs in {work}")


def register(groups: CommandGroups) -> None:
    config_command(groups.root, "demo", DemoConfig, demo, "Run the main job end to end on the embedded default.")
