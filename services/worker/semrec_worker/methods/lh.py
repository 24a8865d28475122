"""LH: an item is the language model's last hidden state of its caption (the SAID paper's baseline).

SAID (Hu et al., 2024) compares its learned item prefixes with the simplest use of an LLM as an item
encoder: feed the caption `title: ..., brand: ..., category: ...` and take the final layer's hidden state
at the last token, h_L(caption)[-1], as the item vector. Optionally PCA-reduced to a backbone's width.
"""

from __future__ import annotations

import time
from pathlib import Path

from semrec.item_table import ItemTable

from semrec_worker.core.reduction import pca_reduce
from semrec_worker.data.dataset import SequenceDataset, load_dataset
from semrec_worker.data.text import caption
from semrec_worker.lm.backends import EmbeddingBackend, language_model_backend
from semrec_worker.methods.base import RunDirConfig, run_dir, save_table, settings_of
from semrec_worker.methods.llm_settings import LHSettings


class LastHiddenState:
    name = "lh"

    def __init__(self, settings: LHSettings | None = None, backend: EmbeddingBackend | None = None) -> None:
        self.settings = settings or LHSettings()
        self.backend = backend

    def fit(self, dataset: SequenceDataset) -> ItemTable:
        s = self.settings
        backend = self.backend or language_model_backend(
            s.llm, "last", s.backend, s.batch_size, s.max_caption_tokens + 2, s.precision
        )
        texts = [caption(item, max_tokens=s.max_caption_tokens) for item in dataset.items]
        start = time.perf_counter()
        vectors = backend.embed(texts)
        embed_s = time.perf_counter() - start
        metadata = {
            "method": self.name,
            "lm": s.llm,
            "backend": backend.name,
            "pooling": "last",
            "dataset": dataset.name,
            "dataset_fingerprint": dataset.fingerprint,
            "settings": s.model_dump(mode="json"),
            "embed_s": round(embed_s, 2),
            "items_per_s": round(len(texts) / max(embed_s, 1e-9), 2),
        }
        if s.dim is not None:
            vectors, kept = pca_reduce(vectors, s.dim)
            metadata["pca_variance_kept"] = round(kept, 4)
        return ItemTable(dataset.item_ids, vectors, metadata)


class TrainLHConfig(RunDirConfig, LHSettings):
    """`semrec train lh`: the table build, written to a run directory."""


def train_lh(config: TrainLHConfig) -> Path:
    dataset = load_dataset(config)
    table = LastHiddenState(settings_of(config, LHSettings)).fit(dataset)
    return save_table(table, config, run_dir(config, "lh", dataset))
