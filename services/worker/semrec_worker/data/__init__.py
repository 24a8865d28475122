"""Datasets: readers for the common format and raw public formats, k-core, splits, captions, synthetic data."""

from semrec_worker.data.dataset import DataConfig, SequenceDataset, load_dataset
from semrec_worker.data.records import Item

__all__ = ["DataConfig", "Item", "SequenceDataset", "load_dataset"]
