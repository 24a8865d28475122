"""`train`: a sequential recommender on a `Dataset`, saved as a run that `Recommender.from_run` loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from semrec.errors import UserError

from semrec_worker.api.dataset import Dataset
from semrec_worker.api.recommender import Recommender
from semrec_worker.training.config import SeqRecConfig

DATASET_DIRNAME = "data"


def train(dataset: Dataset, out: str | Path, **settings: Any) -> Recommender:
    """Train on `dataset` and save the run to `out`; `settings` are `semrec train seqrec`'s flags as keyword
    arguments (`backbone="gru4rec"`, `epochs=20`, `dim=64`, ...; see `SeqRecConfig`).

    A dataset built in Python (`Dataset.from_frame`) is first written to `out/data/NAME/` in the common format
    and the run's config points there (absolute path), so the run re-runs and reloads from its own folder.
    """
    clashes = sorted(set(settings) & {"data", "out", "kcore", "max_seq_len", "format", "drop_unknown_items"})
    if clashes:
        raise UserError(f"{', '.join(clashes)}: set by the dataset / the out argument, not by train()")
    out = Path(out).expanduser().resolve()
    if not settings.get("resume") and (out / "checkpoint.pt").exists():
        raise UserError(f"{out} already holds a run: pass resume=True to continue it, or choose another out")
    data = dataset.settings.data
    if not _readable_source(data):
        data = str(dataset.save(out / DATASET_DIRNAME / _folder_name(dataset.name)))
    config = SeqRecConfig(
        data=data,
        out=out,
        format=dataset.settings.format if data == dataset.settings.data else "common",
        kcore=dataset.settings.kcore,
        max_seq_len=dataset.settings.max_seq_len,
        drop_unknown_items=dataset.settings.drop_unknown_items,
        **settings,
    )
    from semrec_worker.training.trainer import train_seqrec

    train_seqrec(config, dataset=dataset.sequences)
    return Recommender.from_run(out, dataset=dataset)


def _readable_source(data: str) -> bool:
    """Whether the CLI can rebuild the dataset from `data` alone: synthetic specs and absolute paths that exist."""
    if data == "synthetic" or data.startswith("synthetic:"):
        return True
    path = Path(data)
    return path.is_absolute() and path.exists()


def _folder_name(name: str) -> str:
    """The dataset's name as a folder name (reading the folder back gives the dataset this name)."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip(".-")
    return cleaned or "dataset"
