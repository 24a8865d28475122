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

In Redis each version's manifest may carry an HMAC-SHA256 signature (`sign_manifest` / `verify_manifest`).
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


# ------------------------------------------------------------------ signing
# The manifest names every blob with its SHA-256, so a MAC over the manifest covers the whole bundle. The key
# lives with the publisher and the rankers (settings), never in Redis: whoever can only write to Redis cannot
# produce a bundle a ranker with the key accepts.
SIGNATURE_FIELD = "signature"
SIGNATURE_ALG = "hmac-sha256"
MIN_SIGNING_KEY_BYTES = 32


class SignatureError(UserError):
    """A manifest is unsigned, signed with another key or algorithm, or altered after signing."""


def check_signing_key(key: bytes) -> bytes:
    if len(key) < MIN_SIGNING_KEY_BYTES:
        raise UserError(f"bundle signing key: at least {MIN_SIGNING_KEY_BYTES} bytes "
                        "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)")  # fmt: skip
    return key


def _canonical(manifest: dict[str, Any]) -> bytes:
    import orjson

    unsigned = {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}
    # round-trip once, so the signer and a reader (which parses the stored JSON) canonicalise the same values
    return orjson.dumps(orjson.loads(orjson.dumps(unsigned)), option=orjson.OPT_SORT_KEYS)


def _mac(manifest: dict[str, Any], key: bytes) -> str:
    import hashlib
    import hmac

    return hmac.new(key, _canonical(manifest), hashlib.sha256).hexdigest()


def sign_manifest(manifest: dict[str, Any], key: bytes) -> dict[str, Any]:
    """The manifest with its `signature` (HMAC-SHA256 over the canonical JSON of everything else)."""
    return {**manifest, SIGNATURE_FIELD: {"alg": SIGNATURE_ALG, "mac": _mac(manifest, check_signing_key(key))}}


def verify_manifest(manifest: dict[str, Any], key: bytes) -> None:
    """Raise SignatureError unless the manifest carries a valid signature by `key`."""
    import hmac

    signature = manifest.get(SIGNATURE_FIELD)
    if not isinstance(signature, dict):
        raise SignatureError("bundle is not signed (a signing key is configured: unsigned bundles are refused)")
    if signature.get("alg") != SIGNATURE_ALG or not isinstance(signature.get("mac"), str):
        raise SignatureError(f"bundle signature: unsupported algorithm {signature.get('alg')!r}")
    if not hmac.compare_digest(signature["mac"].encode(), _mac(manifest, key).encode()):
        raise SignatureError("bundle signature does not match (another key, or the manifest was altered)")
    blobs = manifest.get("blobs") or {}
    if not blobs or any(not isinstance(info, dict) or "sha256" not in info for info in blobs.values()):
        raise SignatureError("signed manifest lacks SHA-256 digests of its blobs")
