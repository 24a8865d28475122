"""`semrec recommend --run RUN_DIR --user U | --history A,B,C`: recommendations from a saved run, offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from semrec.cli_builder import CommandGroups, config_command
from semrec.config import JobConfig
from semrec.errors import UserError
from semrec.vocabulary import AcceptsOldNames, OldName


class RecommendConfig(AcceptsOldNames, JobConfig):
    old_names: ClassVar[dict[str, str | OldName]] = {"output": "output_format"}

    run: Path = Field(..., description="a finished `semrec train seqrec` run directory")
    user: str | None = Field(None, description="recommend for this user id (history from the dataset)")
    history: list[str] | None = Field(None, description="recommend after these item ids, oldest first")
    k: int = Field(10, ge=1, description="number of recommendations")
    exclude_seen: bool = Field(True, description="never recommend an item of the history")
    data: str | None = Field(
        None, description="dataset holding the users' histories and titles, filtered like the run's (default: the run's)"
    )
    output_format: Literal["table", "json"] = Field("table", description="print a table, or one JSON object per line")
    threads: int | None = Field(None, ge=1, description="CPU threads of the scoring (default: torch's choice)")


def recommend_command(config: RecommendConfig) -> None:
    if (config.user is None) == (config.history is None):
        raise UserError("give exactly one of --user USER_ID or --history ITEM,ITEM,...")
    from semrec_worker.api import Dataset, Recommender
    from semrec_worker.core.runtime import apply_threads

    if not config.run.is_dir():
        raise UserError(f"--run {config.run}: no such run directory")
    apply_threads(config.threads)
    dataset = None
    if config.data is not None:
        from semrec_worker.training.config import load_seqrec_config

        trained = load_seqrec_config(config.run)  # filter the other dataset as the run's was filtered
        dataset = Dataset.from_path(config.data, kcore=trained.kcore, history_cap=trained.history_cap,
                                    drop_unknown_items=trained.drop_unknown_items)  # fmt: skip
    model = Recommender.from_run(config.run, dataset=dataset)
    if config.user is not None:
        frame = model.recommend([config.user], k=config.k, exclude_seen=config.exclude_seen)
    else:
        frame = model.recommend(histories=[config.history], k=config.k, exclude_seen=config.exclude_seen)
    frame = frame.drop(columns="user")
    if config.output_format == "json":
        for record in frame.to_dict("records"):
            print(json.dumps({k: (None if v != v else v) for k, v in record.items()}))
        return
    print("rank\titem_id\tscore\ttitle")
    for row in frame.itertuples(index=False):
        title = "" if row.title is None or row.title != row.title else row.title
        print(f"{row.rank}\t{row.item_id}\t{row.score:.4f}\t{title}")


def register(groups: CommandGroups) -> None:
    config_command(
        groups.root,
        "recommend",
        RecommendConfig,
        recommend_command,
        "Top-k items for a user of the run's dataset or for a given history, from a saved run on CPU "
        "(no Redis, no server). Prints rank, item id, score and title.",
    )
