"""`semrec export onnx --run RUN_DIR`: the run's encoder as ONNX plus the item table, as a `semrec.bundle.Bundle`.

Serving contract: input `item_ids` int64 [batch, max_len] left-padded with 0, output `embedding` float32
[batch, dim] with unit L2 norm; `items.npz` holds unit-norm item vectors, so the ranker's cosine top-k
(one matrix product) reproduces the trained model's ranking exactly:

- `said_cosine` runs score by cosine already: h_s and item vectors are L2-normalised.
- the item vectors are the run's trained item matrix, whatever its item layer: the ID rows (`--item-layer
  init`), the adapted frozen table (`frozen`) or the fused views (`dual`); `semrec export onnx` also gives a
  frozen/dual run its `item-layer` refresh encoder (refresh/item_layer.py: new items through the semantic view).
- dot-product runs (`full_ce`, `sampled_softmax`, `bce`) score by h_s . e_i, which a cosine of the raw
  vectors would not reproduce (item norms carry popularity). The export appends one coordinate
  (the maximum-inner-product to nearest-neighbour reduction of Bachrach et al., RecSys 2014):
      e'_i = [e_i / M, sqrt(1 - |e_i|^2 / M^2)],  h' = [h_s / |h_s|, 0],  M = max_i |e_i|
  so |e'_i| = |h'| = 1 and e'_i . h' = (e_i . h_s) / (M |h_s|): the same order as the dot product. The bundle's
  dim is then model dim + 1 (`metadata.model_dim` keeps the model's width). The item side is
  `semrec.serving_space.ServingSpace`, the transform the refresh encoders apply to new items too.
- a run with a learned history bias (`--history-bias learned`) adds b to the scores of the history's items;
  the bundle serves h_s and the item vectors only and records b in `metadata.history_bias`. A negative b
  (what training learns where repeats are rare) ranks history items lower; the ranker's `exclude_seen`
  (on by default) drops them altogether, the limit b -> -inf.

The exported graph computes h_s the way `SequenceEncoder.final_position` does: only what the last position's
output depends on (for SASRec and BERT4Rec the last Transformer block for the last query row alone; GRU4Rec
gathers the last item's state), not every position's output of which the last would be kept. Before writing,
the export checks that this equals the full computation (`forward`) on sample histories (left-padded as the
ranker pads them, 1 to max_len items) and records the difference (`metadata.final_position_max_abs_diff`,
`metadata.encoder_graph = "final-position"`). The ranker's contract is unchanged, so bundles exported
before this (every position computed, no `encoder_graph` key) load and serve the same results, only slower.

Export uses the TorchScript-based exporter (`dynamo=False`): one self-contained .onnx file (the dynamo
exporter writes weights to a separate .onnx.data file) with a dynamic batch axis. After writing, the
export runs ONNX Runtime on sample histories and compares with torch; the max abs difference is recorded
in the metadata and a difference above `tolerance` is an error.
"""

from __future__ import annotations

import io
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from semrec.bundle import BUNDLE_DIRNAME, ENCODER_INPUT, ENCODER_OUTPUT, Bundle
from semrec.errors import UserError
from semrec.item_table import ItemTable, utc_now
from semrec.serving_space import ServingSpace
from torch import nn

from semrec_worker.backbones import SequenceEncoder, left_pad
from semrec_worker.data import DataConfig, load_dataset
from semrec_worker.evaluation import EvalSettings, evaluate
from semrec_worker.methods.rebuild import model_from_config
from semrec_worker.training.config import SeqRecConfig, load_seqrec_config

ENCODER_GRAPH = "final-position"  # metadata.encoder_graph of what `export_run` writes


class ServingEncoder(nn.Module):
    """item_ids [B, max_len] -> unit-norm embedding [B, dim (+1 for dot-product models)], through the encoder's
    `final_position` (or its full `forward` with `final_position=False`: the reference the export checks)."""

    def __init__(self, encoder: SequenceEncoder, similarity: str, final_position: bool = True) -> None:
        super().__init__()
        self.encoder = encoder
        self.augment = similarity == "dot"
        self.final_position = final_position

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder.final_position(item_ids) if self.final_position else self.encoder(item_ids)
        hidden = nn.functional.normalize(hidden, dim=-1)
        if self.augment:
            hidden = torch.cat([hidden, torch.zeros_like(hidden[:, :1])], dim=1)
        return hidden


def load_run_encoder(run_dir: str | Path) -> tuple[SequenceEncoder, SeqRecConfig, ItemTable, dict]:
    """A run's best encoder on CPU (eval mode) as it trained, item layer included (`model_from_config`: the
    RAT adapter, TSLRec's gated fusion), with its seqrec settings, trained item table and metrics."""
    run_dir = Path(run_dir)
    needed = [run_dir / n for n in ("config.json", "model.pt", "item_table.npz", "metrics.json")]
    missing = [p.name for p in needed if not p.exists()]
    if missing:
        raise UserError(f"{run_dir}: not a finished seqrec run (missing {', '.join(missing)})")
    encoder = model_from_config(run_dir)
    config = load_seqrec_config(run_dir)  # a stage-2 run's seqrec part
    table = ItemTable.load(run_dir / "item_table.npz")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return encoder, config, table, metrics


@dataclass
class ExportResult:
    bundle_dir: Path
    max_abs_diff: float
    export_s: float
    bundle_test: dict[str, float] | None = None
    final_position_diff: float = 0.0  # final-position graph vs the full computation, in torch


class BundleRecommender:
    """A saved bundle as an evaluation `Recommender`: ONNX Runtime encoder + cosine against the item vectors,
    exactly what the ranker computes."""

    def __init__(self, bundle: Bundle, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.bundle = bundle
        self.session = ort.InferenceSession(bundle.encoder_onnx, options, providers=["CPUExecutionProvider"])

    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        ids = left_pad(histories, self.bundle.max_len).numpy()
        embedding = self.session.run([ENCODER_OUTPUT], {ENCODER_INPUT: ids})[0]
        scores = embedding @ self.bundle.item_vectors.T
        padding = np.full((len(scores), 1), -np.inf, dtype=np.float32)
        return torch.from_numpy(np.concatenate([padding, scores], axis=1))


def evaluate_bundle(bundle_dir: str | Path, data: str) -> dict[str, float]:
    """Full-ranking test metrics of the bundle itself (ONNX Runtime + cosine top-k) on `data`."""
    bundle = Bundle.load(bundle_dir)
    dataset = load_dataset(DataConfig(data=data))
    if dataset.fingerprint != bundle.metadata.get("dataset_fingerprint"):
        raise UserError(f"{data}: not the dataset this bundle was trained on (fingerprint differs)")
    return evaluate(BundleRecommender(bundle), dataset, "test", EvalSettings(protocol="full")).metrics


def item_layer_of(config: SeqRecConfig) -> dict[str, object]:
    """What the served item vectors are: the trained ID rows (init), the adapted frozen table (frozen) or the
    fused views (dual)."""
    if config.item_layer == "init":
        return {"mode": "init"}
    out: dict[str, object] = {"mode": config.item_layer, "adapter_hidden": config.adapter_hidden}
    if config.item_layer == "dual":
        out.update(fusion=config.fusion, id_init=config.id_init)
    return out


def sample_histories(n_items: int, max_len: int, n: int = 16, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_len + 1, size=n)
    lengths[0] = max_len
    lengths[1 % n] = 1
    return left_pad([rng.integers(1, n_items + 1, size=k) for k in lengths], max_len)


def serving_onnx(serving: ServingEncoder, n_items: int, max_len: int, opset: int = 17) -> bytes:
    """The ONNX bytes of a `ServingEncoder` (traced on sample histories, dynamic batch axis)."""
    example = sample_histories(n_items, max_len, n=2)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # shapes are fixed at max_len by design, so the tracer's constant-folding warnings are expected
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*feature will be removed.*")
        # the GRU warning is about h0 shapes; batch 1 and batch N through one file are tested
        warnings.filterwarnings("ignore", message=".*variable length with GRU.*")
        torch.onnx.export(
            serving, (example,), buffer, input_names=[ENCODER_INPUT], output_names=[ENCODER_OUTPUT],
            dynamic_axes={ENCODER_INPUT: {0: "batch"}, ENCODER_OUTPUT: {0: "batch"}},
            opset_version=opset, dynamo=False,
        )
    return buffer.getvalue()


def export_run(
    run_dir: str | Path,
    out: str | Path | None = None,
    opset: int = 17,
    tolerance: float = 1e-4,
    evaluate_test: bool = False,
) -> ExportResult:
    """Write RUN_DIR/bundle (or `out`). With `evaluate_test`, also rank the run's test split through the saved
    bundle (ONNX Runtime + cosine, as the ranker does) and record the metrics beside the run's torch ones."""
    import onnxruntime as ort

    start = time.perf_counter()
    run_dir = Path(run_dir)
    encoder, config, table, metrics = load_run_encoder(run_dir)
    similarity = metrics["model"]["similarity"]
    serving = ServingEncoder(encoder, similarity).eval()
    onnx_bytes = serving_onnx(serving, len(table), config.model.max_len, opset)

    check = sample_histories(len(table), config.model.max_len, n=16, seed=1)
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    onnx_out = session.run([ENCODER_OUTPUT], {ENCODER_INPUT: check.numpy()})[0]
    with torch.no_grad():
        torch_out = serving(check).numpy()
        full_out = ServingEncoder(encoder, similarity, final_position=False).eval()(check).numpy()
    final_position_diff = float(np.abs(torch_out - full_out).max())
    if final_position_diff > tolerance:
        raise UserError(f"final-position check failed: max abs diff {final_position_diff:.2e} > {tolerance:.0e} "
                        "against the full computation")  # fmt: skip
    max_abs_diff = float(np.abs(onnx_out - torch_out).max())
    if max_abs_diff > tolerance:
        raise UserError(f"ONNX parity check failed: max abs diff {max_abs_diff:.2e} > {tolerance:.0e}")

    popularity_path = run_dir / "popularity.npy"
    popularity = np.load(popularity_path) if popularity_path.exists() else np.zeros(len(table), np.float32)
    item_vectors = ServingSpace.fit(table.vectors, similarity).apply(table.vectors)
    test = {r["protocol"]: r["metrics"] for r in metrics.get("test", [])}
    bundle = Bundle(
        encoder_onnx=onnx_bytes,
        item_ids=table.ids,
        item_vectors=item_vectors,
        popularity=popularity,
        metadata={
            "backbone": config.model.backbone,
            "max_len": config.model.max_len,
            "dim": int(item_vectors.shape[1]),
            "model_dim": table.dim,
            "similarity": similarity,
            "scoring": "cosine" if similarity == "cosine" else "dot product via MIPS->cosine augmentation",
            "loss": config.objective.loss,
            # not in the encoder: b << 0 is served as the ranker's exclude_seen (on by default), see docs/serving.md
            "history_bias": float(encoder.history_bias.detach()) if encoder.history_bias is not None else None,
            "last_item_bias": float(encoder.last_item_bias.detach()) if encoder.last_item_bias is not None else None,
            "init_method": table.metadata.get("init_method"),
            "item_layer": item_layer_of(config),
            "dataset": metrics["dataset"]["name"],
            "dataset_fingerprint": metrics["dataset"]["fingerprint"],
            "n_items": len(table),
            "source_run": str(run_dir.resolve()),
            "created_at": utc_now(),
            "onnx_opset": opset,
            "parity_max_abs_diff": max_abs_diff,
            "encoder_graph": ENCODER_GRAPH,
            "final_position_max_abs_diff": final_position_diff,
            "test_metrics": test,
            "config": config.to_dict(),
        },
    )
    bundle_dir = Path(out) if out is not None else run_dir / BUNDLE_DIRNAME
    bundle.save(bundle_dir)
    bundle_test = None
    if evaluate_test:
        bundle_test = evaluate_bundle(bundle_dir, config.dataset.data)
        bundle.metadata["bundle_test_metrics"] = bundle_test
        bundle.save(bundle_dir)
    return ExportResult(bundle_dir, max_abs_diff, time.perf_counter() - start, bundle_test, final_position_diff)
