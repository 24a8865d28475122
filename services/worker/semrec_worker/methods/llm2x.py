"""LLM2X (LLM2Sequential / LLM2BERT4Rec): text embeddings, PCA-reduced to the model width, as initial item
embeddings of a sequential recommender.

Harte et al., "Leveraging Large Language Models for Sequential Recommendation" (RecSys'23), section 3.2:
each item's text is embedded by an LLM embedding model (OpenAI ada-002 in the paper; here the packaged
all-MiniLM-L6-v2, since nothing is downloaded), the matrix E in R^{n x 1536} is reduced by PCA to the
backbone's embedding width d, and the result initialises the backbone's item embedding table, which is
then trained as usual.
"""

from __future__ import annotations

import time
from pathlib import Path

from semrec.errors import UserError
from semrec.item_table import ItemTable

from semrec_worker.core.reduction import pca_reduce
from semrec_worker.data.dataset import SequenceDataset, load_dataset
from semrec_worker.data.text import caption
from semrec_worker.lm.backends import EmbeddingBackend, text_encoder
from semrec_worker.methods.base import RunDirConfig, run_dir, save_table, settings_of
from semrec_worker.methods.llm_settings import LLM2XSettings


class LLM2X:
    name = "llm2x"

    def __init__(self, settings: LLM2XSettings | None = None, encoder: EmbeddingBackend | None = None) -> None:
        self.settings = settings or LLM2XSettings()
        self.encoder = encoder

    def fit(self, dataset: SequenceDataset) -> ItemTable:
        s = self.settings
        start = time.perf_counter()
        if s.text_table is not None:
            saved = ItemTable.load(s.text_table)
            text_vectors, missing = saved.aligned(dataset.item_ids)
            if missing:
                raise UserError(f"{s.text_table}: lacks {len(missing)} of the dataset's items (e.g. {missing[0]})")
            encoder_name = str(saved.metadata.get("lm", "saved text table"))
        else:
            encoder = self.encoder or text_encoder(s.text_encoder, s.batch_size)
            text_vectors = encoder.embed([caption(item, max_tokens=s.max_caption_tokens) for item in dataset.items])
            encoder_name = encoder.name
        embed_s = time.perf_counter() - start
        vectors, kept = pca_reduce(text_vectors, s.dim)
        return ItemTable(
            dataset.item_ids,
            vectors,
            {
                "method": self.name,
                "lm": encoder_name,
                "text_dim": int(text_vectors.shape[1]),
                "pca_variance_kept": round(kept, 4),
                "dataset": dataset.name,
                "dataset_fingerprint": dataset.fingerprint,
                "settings": s.model_dump(mode="json"),
                "embed_s": round(embed_s, 2),
            },
        )


class TrainLLM2XConfig(RunDirConfig, LLM2XSettings):
    """`semrec train llm2x`: the table build, written to a run directory."""


def train_llm2x(config: TrainLLM2XConfig) -> Path:
    dataset = load_dataset(config)
    table = LLM2X(settings_of(config, LLM2XSettings)).fit(dataset)
    return save_table(table, config, run_dir(config, "llm2x", dataset))
