"""`semrec train tslrec`: pre-grouping -> user-level SFT -> item augmentation -> a new gated backbone
(the method: `semrec_worker.methods.tslrec`)."""

from __future__ import annotations

from semrec.cli_builder import CommandGroups, config_command

from semrec_worker.methods.tslrec.settings import TSLRecJobConfig


def train_tslrec(config: TSLRecJobConfig):
    from semrec_worker.methods.tslrec.train import train_tslrec as run  # torch only when the job runs

    return run(config)


def register(groups: CommandGroups) -> None:
    config_command(
        groups.train,
        "tslrec",
        TSLRecJobConfig,
        train_tslrec,
        "TSLRec: k-means pre-grouping of SASRec item embeddings, user-level LoRA SFT of the LM, "
        "item knowledge fused with ID embeddings through a gate in a new backbone.",
    )
