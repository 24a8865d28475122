"""`semrec bench encoder`: the encoder's graph form, final position vs all positions, in process.

On the HTTP test's synthetic bundle (bench/ranker.py `bench_bundle`: SASRec-like, width 256, max_len 50, the
cached HNSW index), both graph forms of the same weights (bench/synthetic.py) are timed interleaved, so that
other work on the machine slows both alike:

1. the encoder alone (`OnnxEncoder.encode`, the served session options) at each batch size: rounds of
   `calls` calls per form, the forms' order alternating between rounds;
2. the in-process floor, `Engine.recommend` (encode + top-k, the served settings) for HNSW and the exact int8
   path, one request after the other, the forms alternating per request; and `Engine.run` over batches of
   `batch` requests (what a micro-batch costs).

Both forms must give the same embeddings (max abs diff recorded) and the same recommendations (the share of
identical top-k lists is recorded). Writes `results/ranker-encoder-graph<tag>.json`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field
from semrec.cli_builder import echo
from semrec.config import JobConfig

GRAPHS = ("all-positions", "final-position")


class EncoderGraphBenchConfig(JobConfig):
    n_items: int = Field(100_000, ge=100, description="catalogue size of the synthetic bundle")
    backbone: Literal["sasrec", "gru4rec"] = Field("sasrec", description="synthetic encoder (bench/synthetic.py)")
    dim: int = Field(256, ge=8, description="embedding width")
    max_len: int = Field(50, ge=2, description="encoder input length")
    history_len: int = Field(20, ge=1, description="items per history (as the HTTP test's requests)")
    batches: list[int] = Field([1, 8], description="encoder batch sizes")
    rounds: int = Field(30, ge=2, description="interleaved rounds per batch size (encoder alone)")
    calls: int = Field(20, ge=1, description="encoder calls per form and round")
    queries: int = Field(600, ge=10, description="requests per form for the floor (Engine.recommend)")
    floor_batch: int = Field(8, ge=1, description="requests per Engine.run batch for the batched floor")
    indexes: list[Literal["hnsw", "exact"]] = Field(["hnsw", "exact"], description="top-k of the floor")
    k: int = Field(10, ge=1, le=200, description="items per recommendation")
    ann_expansion: int = Field(256, ge=8, description="HNSW search breadth (SEMREC_ANN_EXPANSION)")
    hnsw_expansion_add: int = Field(64, ge=8, description="HNSW build breadth if the bundle is built here")
    threads: int = Field(1, ge=1, description="ONNX Runtime intra-op threads (SEMREC_ORT_THREADS)")
    seed: int = Field(0, description="seed of weights, vectors and histories (the HTTP test's bundle at 0)")
    tag: str = Field("", description="suffix of the results file")
    results_dir: Path = Field(Path("results"), description="where ranker-encoder-graph<tag>.json goes")


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4), "p99_ms": round(float(np.percentile(ms, 99)), 4),
            "mean_ms": round(float(ms.mean()), 4), "n": float(len(ms))}  # fmt: skip


def _padded(histories: np.ndarray, max_len: int) -> np.ndarray:
    out = np.zeros((len(histories), max_len), dtype=np.int64)
    width = min(histories.shape[1], max_len)
    out[:, max_len - width :] = histories[:, -width:]
    return out


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def time_encoders(encoders: dict, inputs: np.ndarray, rounds: int, calls: int) -> dict[str, list[float]]:
    """Per-call wall times of each encoder on `inputs`, in rounds whose order of the encoders alternates."""
    times: dict[str, list[float]] = {name: [] for name in encoders}
    names = list(encoders)
    for name in names:  # warm-up
        for _ in range(5):
            encoders[name].encode(inputs)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            encode = encoders[name].encode
            for _ in range(calls):
                start = time.perf_counter()
                encode(inputs)
                times[name].append(time.perf_counter() - start)
    return times


def time_floor(engines: dict, histories: list[list[str]], k: int, batch: int) -> tuple[dict, dict, float]:
    """(single-request wall times, batch wall times, share of identical top-k lists) of each engine, the
    engines alternating per request (and per batch)."""
    names = list(engines)
    for name in names:  # warm-up: the first runs of a shape allocate
        for h in histories[:20]:
            engines[name].recommend(h, k)
        engines[name].run([engines[name].prepare(h, k) for h in histories[:batch]])
    single: dict[str, list[float]] = {name: [] for name in names}
    batched: dict[str, list[float]] = {name: [] for name in names}
    same = 0
    for i, h in enumerate(histories):
        rows = {}
        for name in names if i % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            rows[name] = engines[name].recommend(h, k).rows
            single[name].append(time.perf_counter() - start)
        same += all(np.array_equal(rows[names[0]], r) for r in rows.values())
    for i in range(0, len(histories) - batch + 1, batch):
        for name in names if (i // batch) % 2 == 0 else names[::-1]:
            engine = engines[name]
            queries = [engine.prepare(h, k) for h in histories[i : i + batch]]
            start = time.perf_counter()
            engine.run(queries)
            batched[name].append(time.perf_counter() - start)
    return single, batched, same / len(histories)


def bench_encoder_graph(config: EncoderGraphBenchConfig) -> Path:
    from semrec.results import RunResult, write_results
    from threadpoolctl import threadpool_limits

    from semrec_ranker.bench.ranker import RankerBenchConfig, bench_bundle
    from semrec_ranker.bench.synthetic import synthetic_encoder
    from semrec_ranker.engine import Engine
    from semrec_ranker.engine.encoder import OnnxEncoder

    threadpool_limits(limits=1, user_api="blas")  # as the served ranker (SEMREC_BLAS_THREADS)
    load_start = _load()
    bundle_config = RankerBenchConfig(http_backbone=config.backbone, dim=config.dim, max_len=config.max_len,
                                      seed=config.seed, hnsw_expansion_add=config.hnsw_expansion_add,
                                      encoder_graph="final-position")  # fmt: skip
    bundle = bench_bundle(bundle_config, config.n_items, with_ann="hnsw" in config.indexes)
    onnx = {"final-position": bundle.encoder_onnx,
            "all-positions": synthetic_encoder(config.backbone, config.n_items, config.dim, config.max_len,
                                               config.seed, "all-positions")}  # fmt: skip
    rng = np.random.default_rng(config.seed + 3)
    histories = rng.integers(1, config.n_items + 1, (max(config.queries, 64), config.history_len))
    common = {**config.to_dict(), "ort_threads": config.threads, "blas_threads": 1,
              "onnx_mib": {g: round(len(b) / 2**20, 1) for g, b in onnx.items()}}  # fmt: skip
    runs: list[RunResult] = []
    dataset = f"synthetic-{config.n_items}x{config.dim}"

    encoders = {g: OnnxEncoder(onnx[g], config.threads, "cpu") for g in GRAPHS}
    check = _padded(histories[:64], config.max_len)
    diff = float(np.abs(encoders["final-position"].encode(check) - encoders["all-positions"].encode(check)).max())
    echo(f"max abs diff final-position vs all-positions over 64 histories: {diff:.2e}")
    for batch in config.batches:
        inputs = _padded(histories[:batch], config.max_len)
        before = _load()
        times = time_encoders(encoders, inputs, config.rounds, config.calls)
        for graph in GRAPHS:
            metrics = {**_stats(times[graph]), "max_abs_diff": diff, "load_average_1m_before": before[0],
                       "load_average_1m_after": _load()[0]}  # fmt: skip
            echo(f"encoder {graph:14s} batch {batch}: {metrics}")
            runs.append(RunResult(dataset=dataset, method="onnxruntime", backbone=config.backbone,
                                  protocol="encoder", metrics=metrics,
                                  config={**common, "encoder_graph": graph, "batch": batch}))  # fmt: skip
    del encoders

    texts = [[f"i{j}" for j in h] for h in histories[: config.queries]]
    for index in config.indexes:
        engines = {g: Engine("bench", dataclasses.replace(bundle, encoder_onnx=onnx[g]), ort_threads=config.threads,
                             device="cpu", ann_threshold=0 if index == "hnsw" else 10**12,
                             ann_expansion=config.ann_expansion) for g in GRAPHS}  # fmt: skip
        kind = engines["final-position"].index_kind
        before = _load()
        single, batched, same = time_floor(engines, texts, config.k, config.floor_batch)
        for graph in GRAPHS:
            for protocol, times, batch in (("floor", single, 1), ("floor-batch", batched, config.floor_batch)):
                metrics = {**_stats(times[graph]), "identical_top_k": round(same, 4),
                           "load_average_1m_before": before[0], "load_average_1m_after": _load()[0]}  # fmt: skip
                echo(f"{protocol:11s} {kind:10s} {graph:14s} batch {batch}: {metrics}")
                runs.append(RunResult(dataset=dataset, method="onnxruntime", backbone=config.backbone,
                                      protocol=f"{protocol}-{kind}", metrics=metrics,
                                      config={**common, "encoder_graph": graph, "batch": batch, "index": kind}))  # fmt: skip
        del engines
    for run in runs:
        run.config["load_average_at_start"] = load_start
    path = write_results(config.results_dir / f"ranker-encoder-graph{config.tag}.json", runs)
    echo(f"results written to {path} (load average {_load()})")
    return path
