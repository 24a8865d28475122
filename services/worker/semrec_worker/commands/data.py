"""`semrec data stats` and `semrec data synth`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from semrec.cli_builder import CommandGroups, config_command, echo
from semrec.config import JobConfig
from semrec.vocabulary import OldName

from semrec_worker.data.dataset import DataConfig, load_dataset, read_raw
from semrec_worker.data.formats import write_common


def _format_of_json_output(json_output: bool) -> dict[str, str]:
    return {"output_format": "json" if json_output else "table"}


class DataStatsConfig(DataConfig):
    old_names: ClassVar[dict[str, str | OldName]] = {
        "json_output": OldName("output_format", _format_of_json_output, cli_type=bool)
    }

    output_format: Literal["table", "json"] = Field("table", description="print a table, or JSON")


def data_stats(config: DataStatsConfig) -> dict:
    dataset = load_dataset(config)
    stats = {"dataset": dataset.name, **dataset.stats, "fingerprint": dataset.fingerprint}
    if config.output_format == "json":
        print(json.dumps(stats, indent=2))
        return stats
    before, after = stats["before_kcore"], stats["after_kcore"]
    print(f"dataset {dataset.name} (fingerprint {dataset.fingerprint})")
    print(f"{'':14}{'before':>12}{f'after {config.kcore}-core':>16}")
    for key in ("users", "items", "interactions", "avg_seq_len", "density"):
        print(f"{key:14}{before[key]:>12}{after[key]:>16}")
    return stats


class SynthConfig(JobConfig):
    spec: str = Field("synthetic", description="'synthetic[:users=N,items=N,avg_len=X,zipf=X,seed=N]'")
    out: Path = Field(..., description="folder to write interactions.csv.gz + items.jsonl.gz (common format)")


def data_synth(config: SynthConfig) -> Path:
    name, raw, items = read_raw(DataConfig(data=config.spec))
    write_common(config.out, raw, items)
    config.save(config.out / "synth_config.json")
    echo(f"wrote {len(raw)} interactions over {len(items)} items ({name}) to {config.out}")
    return config.out


def register(groups: CommandGroups) -> None:
    config_command(
        groups.data,
        "stats",
        DataStatsConfig,
        data_stats,
        "Users, items, interactions, average length and density, before and after k-core filtering.",
    )
    config_command(
        groups.data,
        "synth",
        SynthConfig,
        data_synth,
        "Write the seeded synthetic catalogue (text that predicts behaviour) in the common format.",
    )
