"""`ItemTable`: the one artifact every embedding method produces and every backbone consumes.

A table is item ids + a float32 matrix (one row per id) + metadata (method, language model, dims,
dataset name and fingerprint, created_at, and whatever the method measured, e.g. generation accuracy).
Stored as one `.npz` file that loads without pickle. The metadata is validated by `TableMetadata` whenever a
table is made, saved or loaded; its named fields have one meaning each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from semrec.errors import UserError


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class TableMetadata(BaseModel):
    """What every item table records; a method adds what it measured as further keys."""

    model_config = ConfigDict(extra="allow")

    dim: int
    created_at: str
    method: str | None = None  # the method that made the table ("said", "lh", "seqrec", ...)
    dataset: str | None = None  # the dataset's name
    dataset_fingerprint: str | None = None  # the dataset's content fingerprint (`SequenceDataset.fingerprint`)
    lm: str | None = None  # the language model, for LM-based methods

    @model_validator(mode="before")
    @classmethod
    def _one_meaning_per_field(cls, data: Any) -> Any:
        """Tables saved before the schema held the fingerprint in "dataset" and the name in "dataset_name"."""
        if isinstance(data, dict) and "dataset_name" in data:
            data = dict(data)
            name = data.pop("dataset_name")
            if data.get("dataset") in (None, data.get("dataset_fingerprint")):
                data["dataset"] = name
        return data


def validated_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    try:
        return TableMetadata.model_validate(metadata).model_dump(exclude_unset=True)
    except ValidationError as exc:
        raise UserError(f"item table metadata: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None


@dataclass
class ItemTable:
    ids: list[str]
    vectors: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ids = [str(i) for i in self.ids]
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.ids):
            raise UserError(
                f"item table: {len(self.ids)} ids but vectors of shape {tuple(self.vectors.shape)}"
            )
        if len(set(self.ids)) != len(self.ids):
            raise UserError("item table: item ids are not unique")
        if not np.isfinite(self.vectors).all():
            raise UserError("item table: vectors contain NaN or inf")
        self.metadata = validated_metadata({"created_at": utc_now(), **self.metadata, "dim": self.dim})

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def index(self) -> dict[str, int]:
        return {item_id: row for row, item_id in enumerate(self.ids)}

    def normalized(self) -> ItemTable:
        """Rows scaled to unit L2 norm (zero rows stay zero), so a dot product is a cosine."""
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        return ItemTable(self.ids, self.vectors / np.maximum(norms, 1e-12), dict(self.metadata))

    def aligned(self, ids: list[str]) -> tuple[np.ndarray, list[str]]:
        """Rows for `ids` in that order; ids missing from the table get zero rows and are returned."""
        position = self.index()
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        missing = []
        for row, item_id in enumerate(ids):
            source = position.get(item_id)
            if source is None:
                missing.append(item_id)
            else:
                out[row] = self.vectors[source]
        return out, missing

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            np.savez(
                fh,
                ids=np.array(self.ids, dtype=str),
                vectors=self.vectors,
                metadata=np.array(json.dumps(validated_metadata(self.metadata), sort_keys=True)),
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> ItemTable:
        path = _table_file(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                ids = data["ids"].tolist()
                vectors = data["vectors"]
                metadata = json.loads(str(data["metadata"]))
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"{path}: not a semrec item table ({exc})") from exc
        return cls(ids, vectors, metadata)

    @staticmethod
    def load_metadata(path: str | Path) -> dict[str, Any]:
        """A saved table's metadata alone (the vectors are not read: a check of a large table before a job)."""
        path = _table_file(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                metadata = json.loads(str(data["metadata"]))
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"{path}: not a semrec item table ({exc})") from exc
        if not isinstance(metadata, dict):
            raise UserError(f"{path}: not a semrec item table (its metadata is not an object)")
        return metadata


def _table_file(path: str | Path) -> Path:
    """The .npz of a table file or run directory (UserError when there is none)."""
    path = Path(path)
    if path.is_dir():
        path = path / "item_table.npz"
    if not path.exists():
        raise UserError(f"{path}: no item table there")
    return path
