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

    The run's config stores the dataset's folder as an absolute path; a dataset built in Python
    (`Dataset.from_frame`) is first written to `out/data/NAME/` in the common format, so the run re-runs and
    reloads from anywhere.
    """
    clashes = sorted(set(settings) & {"data", "out", "kcore", "history_cap", "format", "drop_unknown_items"})
    if clashes:
        raise UserError(f"{', '.join(clashes)}: set by the dataset / the out argument, not by train()")
    out = Path(out).expanduser().resolve()
    if not settings.get("resume") and (out / "checkpoint.pt").exists():
        raise UserError(f"{out} already holds a run: pass resume=True to continue it, or choose another out")
    data = _rebuildable_source(dataset.source)
    saved = data is None
    if data is None:
        data = str(dataset.save(out / DATASET_DIRNAME / _folder_name(dataset.name)))
    config = SeqRecConfig(
        data=data,
        out=out,
        format="common" if saved else dataset.settings.format,
        kcore=dataset.settings.kcore,
        history_cap=dataset.settings.history_cap,
        drop_unknown_items=dataset.settings.drop_unknown_items,
        **settings,
    )
    from semrec_worker.training.trainer import train_seqrec

    train_seqrec(config, dataset=dataset.sequences)
    return Recommender.from_run(out, dataset=dataset)


def _rebuildable_source(data: str | None) -> str | None:
    """`data` as the run's config should store it so the CLI rebuilds the dataset from anywhere: a synthetic
    spec as it is, an existing path made absolute; None for a dataset that exists only in memory."""
    if data is None:
        return None
    if data == "synthetic" or data.startswith("synthetic:"):
        return data
    path = Path(data).expanduser()
    return str(path.resolve()) if path.exists() else None


def _folder_name(name: str) -> str:
    """The dataset's name as a folder name (reading the folder back gives the dataset this name)."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip(".-")
    return cleaned or "dataset"
