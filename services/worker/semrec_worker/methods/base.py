"""The one protocol every item-embedding method implements."""

from __future__ import annotations

from typing import Protocol

from semrec.item_table import ItemTable

from semrec_worker.data.dataset import SequenceDataset


class EmbeddingMethod(Protocol):
    """(items, interactions) -> ItemTable. `dataset.items` carries the text, `dataset.sequences` the behaviour.

    Implementations must only read training interactions (`dataset.train_sequences()`), never the
    validation or test targets, and must record `method`, `dataset` fingerprint and their settings in the
    table's metadata.
    """

    name: str

    def fit(self, dataset: SequenceDataset) -> ItemTable: ...
