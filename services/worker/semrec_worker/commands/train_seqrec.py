"""`semrec train seqrec`: GRU4Rec / SASRec / BERT4Rec, randomly or table-initialised (see docs/seqrec.md)."""

from __future__ import annotations

from semrec.cli_builder import CommandGroups, config_command

from semrec_worker.methods.registry import train_backbone
from semrec_worker.training.config import SeqRecConfig


def train_seqrec_command(config: SeqRecConfig) -> None:
    train_backbone(config)


def register(groups: CommandGroups) -> None:
    config_command(
        groups.train,
        "seqrec",
        SeqRecConfig,
        train_seqrec_command,
        "Train a sequential recommender (gru4rec, sasrec, bert4rec) on per-prefix targets with early stopping; "
        "RUN_DIR gets config, metrics, checkpoint, model, item table and test results. "
        "Data-parallel: torchrun --nproc-per-node N $(which semrec) train seqrec ...",
    )
