"""The model bundle: everything the ranker serves, from one training run, so parts can never be mixed.

A bundle holds
- `encoder_onnx`: the ONNX sequence encoder. Input `item_ids` int64 [batch, max_len], left-padded with 0,
  where item index k >= 1 is `item_ids[k - 1]`; output `embedding` float32 [batch, dim], L2-normalised.
- `item_ids`: the catalogue, in index order (row r of `item_vectors` is item index r + 1).
- `item_vectors`: float32 [n_items, dim], rows L2-normalised, so serving is a cosine top-k (a dot product).
- `popularity`: float32 [n_items] training interaction counts, for the cold-start fallback.
- `metadata`: backbone, max_len, dim, dataset fingerprint, source run, created_at, config, ...
- `ann_index` (optional): a serialised ANN index over `item_vectors`, built offline by the worker.

On disk (`semrec export onnx` writes it into RUN_DIR/bundle/): `encoder.onnx`, `items.npz`
(ids, vectors, popularity), `metadata.json`, optional `ann.index`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semrec.errors import UserError

ENCODER_INPUT = "item_ids"
ENCODER_OUTPUT = "embedding"
BUNDLE_DIRNAME = "bundle"


@dataclass
class Bundle:
    encoder_onnx: bytes
    item_ids: list[str]
    item_vectors: np.ndarray
    popularity: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    ann_index: bytes | None = None

    def __post_init__(self) -> None:
        self.item_ids = [str(i) for i in self.item_ids]
        self.item_vectors = np.ascontiguousarray(self.item_vectors, dtype=np.float32)
        self.popularity = np.asarray(self.popularity, dtype=np.float32)
        n = len(self.item_ids)
        if self.item_vectors.ndim != 2 or self.item_vectors.shape[0] != n:
            raise UserError(f"bundle: {n} item ids but item vectors of shape {self.item_vectors.shape}")
        if self.popularity.shape != (n,):
            raise UserError(f"bundle: popularity has shape {self.popularity.shape}, expected ({n},)")
        if not self.encoder_onnx:
            raise UserError("bundle: empty encoder")
        for key in ("max_len", "dim"):
            if key not in self.metadata:
                raise UserError(f"bundle: metadata lacks '{key}'")

    @property
    def max_len(self) -> int:
        return int(self.metadata["max_len"])

    @property
    def dim(self) -> int:
        return int(self.item_vectors.shape[1])

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "encoder.onnx").write_bytes(self.encoder_onnx)
        with (directory / "items.npz").open("wb") as fh:
            np.savez(fh, ids=np.array(self.item_ids, dtype=str), vectors=self.item_vectors, popularity=self.popularity)
        (directory / "metadata.json").write_text(json.dumps(self.metadata, indent=2, sort_keys=True) + "\n")
        if self.ann_index is not None:
            (directory / "ann.index").write_bytes(self.ann_index)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Bundle:
        directory = Path(directory)
        if (directory / BUNDLE_DIRNAME).is_dir():
            directory = directory / BUNDLE_DIRNAME
        needed = [directory / n for n in ("encoder.onnx", "items.npz", "metadata.json")]
        missing = [p.name for p in needed if not p.exists()]
        if missing:
            raise UserError(f"{directory}: not a bundle (missing {', '.join(missing)}; run `semrec export onnx`)")
        with np.load(directory / "items.npz", allow_pickle=False) as data:
            ids, vectors, popularity = data["ids"].tolist(), data["vectors"], data["popularity"]
        ann = directory / "ann.index"
        return cls(
            encoder_onnx=(directory / "encoder.onnx").read_bytes(),
            item_ids=ids,
            item_vectors=vectors,
            popularity=popularity,
            metadata=json.loads((directory / "metadata.json").read_text()),
            ann_index=ann.read_bytes() if ann.exists() else None,
        )
