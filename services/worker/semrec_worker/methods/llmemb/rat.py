"""LLMEmb stage 2, RAT (eqs. 6-8): a backbone trained through the adapter over the frozen SCFT embeddings, plus
the collaborative alignment loss; the run also gets its `llmemb` refresh encoder."""

from __future__ import annotations

import os
from pathlib import Path

from semrec.config import JobConfig
from semrec.item_table import ItemTable

from semrec_worker.data.dataset import SequenceDataset, load_dataset
from semrec_worker.methods.llmemb.model import CollaborativeAlignment, LLMEmbAdapter
from semrec_worker.methods.llmemb.refresh_encoder import save_rat_encoder
from semrec_worker.training.config import SeqRecConfig
from semrec_worker.training.trainer import TrainResult, train_seqrec


def train_rat(
    config: SeqRecConfig,
    scft_table: ItemTable,
    collaborative: ItemTable,
    d_m: int | None = None,
    alpha: float = 0.01,
    temperature: float = 2.0,
    dataset: SequenceDataset | None = None,
    scft_source: str | Path | None = None,
    job: JobConfig | None = None,
    similarity: str = "auto",
) -> TrainResult:
    """RAT (eqs. 6-8): train `config.backbone` (a `SeqRecConfig`) through `LLMEmbAdapter` over the frozen,
    PCA'd SCFT embeddings with the backbone's own loss (`config`'s; the paper's SASRec: BCE), adding
    alpha * L_align (eq. 7, over every target position, `similarity` "auto": the one the collaborative SASRec
    trained with) to a pretrained SASRec's item table (`collaborative`, same width as `config.model.dim`).
    The adapter starts as `config`'s `--adapter-start` says (centred, or whitened: W_1 = the PCA whitening of z).
    Returns the seqrec trainer's `TrainResult`.

    With `scft_source` (the SCFT run dir or its item_table.npz), the run also gets the `llmemb` refresh
    encoder (RUN_DIR/refresh_encoder/) that embeds new items the same way (see `refresh_encoder`). `job`: the config
    saved as the run's config.json (default `config`; `semrec train llmemb-rat` saves its whole `TrainRATConfig`)."""
    dataset = dataset if dataset is not None else load_dataset(config.dataset)
    whiten = config.model.items.adapter_start == "whitened"
    adapter = LLMEmbAdapter.from_table(scft_table, dataset, width=config.model.dim, d_m=d_m, whiten=whiten)
    align = CollaborativeAlignment.from_table(collaborative, dataset, alpha, temperature, similarity)
    result = train_seqrec(config, dataset=dataset, item_embedding=adapter, extra_loss=align, job=job)
    if scft_source is not None and int(os.environ.get("RANK", "0")) == 0:  # one writer under torchrun
        save_rat_encoder(result.run_dir, scft_source, scft_table, result.model.item_embedding, result.item_table)
    return result
