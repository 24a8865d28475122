"""`semrec bench export`: the exported encoder of each backbone at serving shapes, final position vs all
positions.

For each backbone (random weights at `dim`, `max_len`, `n_items`: serving cost does not depend on what was
learned), `ServingEncoder` is exported both ways through `serving_onnx` (what `semrec export onnx` writes, and
the full computation earlier exports wrote) and run by ONNX Runtime with the ranker's session options (one
intra-op thread, sequential, no spinning) on left-padded histories of `history_len` items. The two forms are
timed in interleaved rounds, their order alternating, so that other work on the machine slows both alike.
Writes `results/export-encoder-graph<tag>.json`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field
from semrec.cli_builder import CommandGroups, config_command, echo
from semrec.config import JobConfig
from semrec.results import RunResult, write_results

GRAPHS = ("all-positions", "final-position")


class ExportGraphBenchConfig(JobConfig):
    backbones: list[Literal["sasrec", "bert4rec", "gru4rec"]] = Field(
        ["sasrec", "bert4rec", "gru4rec"], description="backbones to export")
    n_items: int = Field(100_000, ge=10, description="item vocabulary of the encoders")
    dim: int = Field(256, ge=8, description="model width")
    max_len: int = Field(50, ge=2, description="encoder input length")
    num_layers: int = Field(1, ge=1, description="Transformer blocks / GRU layers")
    num_heads: int = Field(1, ge=1, description="attention heads (SASRec, BERT4Rec)")
    history_len: int = Field(20, ge=1, description="items per history (left-padded to max_len)")
    batches: list[int] = Field([1, 8], description="batch sizes")
    rounds: int = Field(30, ge=2, description="interleaved rounds per batch size")
    calls: int = Field(20, ge=1, description="calls per form and round")
    seed: int = Field(0, description="seed of weights and histories")
    tag: str = Field("", description="suffix of the results file")
    results_dir: Path = Field(Path("results"), description="where export-encoder-graph<tag>.json goes")


def ranker_session(onnx: bytes):
    """An InferenceSession with the ranker's options (semrec_ranker.engine.encoder.OnnxEncoder)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4), "p99_ms": round(float(np.percentile(ms, 99)), 4),
            "mean_ms": round(float(ms.mean()), 4), "n": float(len(ms))}  # fmt: skip


def bench_export_graph(config: ExportGraphBenchConfig) -> Path:
    import torch

    from semrec_worker.backbones import build_backbone, left_pad
    from semrec_worker.backbones.item_embedding import random_embedding
    from semrec_worker.export.onnx import ServingEncoder, serving_onnx

    torch.set_num_threads(1)
    runs = []
    rng = np.random.default_rng(config.seed)
    histories = [rng.integers(1, config.n_items + 1, config.history_len) for _ in range(max(config.batches))]
    for backbone in config.backbones:
        torch.manual_seed(config.seed)
        model = build_backbone(backbone, random_embedding(config.n_items, config.dim), max_len=config.max_len,
                               num_layers=config.num_layers, num_heads=config.num_heads, dropout=0.0).eval()  # fmt: skip
        sessions, sizes = {}, {}
        for graph in GRAPHS:
            serving = ServingEncoder(model, "cosine", final_position=graph == "final-position").eval()
            onnx = serving_onnx(serving, config.n_items, config.max_len)
            sessions[graph], sizes[graph] = ranker_session(onnx), round(len(onnx) / 2**20, 1)
        check = left_pad(histories, config.max_len).numpy()
        outputs = {g: s.run(["embedding"], {"item_ids": check})[0] for g, s in sessions.items()}
        diff = float(np.abs(outputs["final-position"] - outputs["all-positions"]).max())
        for batch in config.batches:
            inputs = {"item_ids": check[:batch]}
            times: dict[str, list[float]] = {g: [] for g in GRAPHS}
            for graph in GRAPHS:  # warm-up
                for _ in range(5):
                    sessions[graph].run(None, inputs)
            load_before = os.getloadavg()[0]
            for r in range(config.rounds):
                for graph in GRAPHS if r % 2 == 0 else GRAPHS[::-1]:
                    run = sessions[graph].run
                    for _ in range(config.calls):
                        start = time.perf_counter()
                        run(None, inputs)
                        times[graph].append(time.perf_counter() - start)
            for graph in GRAPHS:
                metrics = {**_stats(times[graph]), "max_abs_diff": diff, "onnx_mib": sizes[graph],
                           "load_average_1m_before": round(load_before, 2),
                           "load_average_1m_after": round(os.getloadavg()[0], 2)}  # fmt: skip
                echo(f"{backbone:8s} {graph:14s} batch {batch}: {metrics}")
                runs.append(RunResult(dataset=f"random-{config.n_items}x{config.dim}", method="onnxruntime",
                                      backbone=backbone, protocol="encoder", metrics=metrics,
                                      config={**config.to_dict(), "encoder_graph": graph, "batch": batch}))  # fmt: skip
    path = write_results(config.results_dir / f"export-encoder-graph{config.tag}.json", runs)
    echo(f"results written to {path} (load average {[round(x, 2) for x in os.getloadavg()]})")
    return path


def register(groups: CommandGroups) -> None:
    config_command(groups.bench, "export", ExportGraphBenchConfig, bench_export_graph,
                   "Exported encoder per backbone at serving shapes: final position vs all positions (ONNX Runtime ms).")  # fmt: skip
