"""What every item-embedding method shares: the `EmbeddingMethod` protocol, and the run directory a table
build writes (`config.json` + `item_table.npz`, the table a backbone takes with `--init`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar

from pydantic import Field
from semrec.cli_builder import echo
from semrec.config import StrictModel
from semrec.item_table import ItemTable

from semrec_worker.data.dataset import DataConfig, SequenceDataset


class EmbeddingMethod(Protocol):
    """(items, interactions) -> ItemTable. `dataset.items` carries the text, `dataset.sequences` the behaviour.

    Implementations must only read training interactions (`dataset.train_sequences()`), never the
    validation or test targets, and must record `method`, `dataset` fingerprint and their settings in the
    table's metadata.
    """

    name: str

    def fit(self, dataset: SequenceDataset) -> ItemTable: ...


class RunDirConfig(DataConfig):
    out: Path | None = Field(None, description="run directory (default runs/<method>-<dataset>-<time>)")
    threads: int | None = Field(None, ge=1, description="CPU threads of the table build (default: torch's choice)")


def run_dir(config: RunDirConfig, method: str, dataset: SequenceDataset) -> Path:
    if config.out is not None:
        return config.out
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{method}-{dataset.name}-{stamp}"


def save_table(table: ItemTable, config: RunDirConfig, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    config.save(out)
    path = table.save(out / "item_table.npz")
    echo(f"{table.metadata['method']}: {len(table)} items x {table.dim} -> {path}")
    return path


S = TypeVar("S", bound=StrictModel)


def settings_of(config: StrictModel, settings_cls: type[S]) -> S:
    """The method's own settings out of a job config that extends them."""
    return settings_cls(**{name: getattr(config, name) for name in settings_cls.model_fields})
