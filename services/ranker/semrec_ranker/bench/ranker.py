"""`semrec bench ranker`: in-process latency (encode + top-k), ANN recall@10, and HTTP latency under load.

1. In process: for each backbone (SASRec-like, GRU4Rec-like; width 256, max_len 50) and catalogue size,
   `Engine.recommend` on random histories: p50/p99 of the whole call and of its two stages; with the HNSW
   index too where one is built, and its recall@10 against the exact top-10, for the encoder's queries
   (random weights: directions unrelated to the catalogue, a pessimistic case) and for queries near the
   catalogue (what a trained encoder produces). Item vectors are clustered (bench/synthetic.py).
2. Over HTTP: `semrec serve` in its own processes on loopback (1 or 2 workers, shared memory-mapped arrays,
   micro-batching as configured), driven by wrk (bench/wrk.py: C, closed loop, a Lua script for the POST
   bodies) at fixed connection counts, pinned to other cores than the server where the machine has cores
   to spare; history and user_id requests, exact (int8 + rescoring) and HNSW, each catalogue size. Beside
   each point: the in-process floor (`Engine.recommend`, encode + top-k, timed in this process with the
   same settings), the server's CPU per request and its memory (RSS, USS and PSS of each worker: PSS
   splits the shared pages, USS is what one more worker costs). The eager-PyTorch peer serves the same
   requests for comparison. Besides the closed-loop connection counts, `rates` adds points at fixed
   offered rates (paced by the wrk script, bench/wrk.py), each flagged with the share of sends that left
   late (the server fell behind).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator
from semrec.cli_builder import echo
from semrec.config import JobConfig
from semrec.vocabulary import AcceptsOldNames, OldName


class RankerBenchConfig(AcceptsOldNames, JobConfig):
    old_names: ClassVar[dict[str, str | OldName]] = {
        "ort_threads": "threads", "slo_ms": "slo_p99_ms", "out_dir": "results_dir"
    }

    sizes: list[int] = Field([10_000, 100_000, 1_000_000], description="catalogue sizes (in-process)")
    backbones: list[str] = Field(["sasrec", "gru4rec"], description="encoders: sasrec, gru4rec")
    dim: int = Field(256, ge=8, description="embedding width")
    max_len: int = Field(50, ge=2, description="encoder input length")
    queries: int = Field(300, ge=10, description="timed queries per setting")
    k: int = Field(10, ge=1, le=200, description="items per recommendation")
    ann_sizes: list[int] = Field([10_000, 100_000], description="sizes that also get an HNSW index + recall")
    ann_expansions: list[int] = Field([64, 128, 256], description="HNSW search breadths to measure")
    http: bool = Field(True, description="run the HTTP load test (wrk)")
    http_items: list[int] = Field([100_000, 1_000_000], description="catalogue sizes of the HTTP test")
    http_backbone: Literal["sasrec", "gru4rec"] = Field("sasrec", description="encoder of the HTTP test")
    encoder_graph: Literal["final-position", "all-positions"] = Field(
        "final-position", description="graph form of the synthetic encoders: final-position (what `semrec export onnx` "
        "writes) or all-positions (exports before it; bench/synthetic.py)")
    http_indexes: list[Literal["exact", "hnsw"]] = Field(["hnsw", "exact"], description="served top-k: exact (int8 + rescoring), hnsw")
    http_workers: list[int] = Field([1, 2], description="uvicorn worker counts (`semrec serve --workers`)")
    http_kinds: list[Literal["history", "user"]] = Field(["history", "user"], description="request kinds: history in the body, user_id (history from Redis)")
    connections: list[int] = Field([1, 4, 16, 64], description="wrk connection counts (closed loop: one request in flight each)")
    rates: list[float] = Field([], description="fixed offered rates (req/s) per series, paced by the wrk script (bench/wrk.py)")
    rate_connections: int = Field(32, ge=1, description="wrk connections of the fixed-rate points (enough to keep sends on schedule)")
    duration_s: float = Field(5.0, ge=1, description="seconds of wrk per point")
    warmup_s: float = Field(1.0, ge=0, description="seconds of wrk before each server's first point")
    wrk_threads: int = Field(1, ge=1, description="wrk threads (each drives connections / threads connections)")
    settle_s: float = Field(2.0, ge=0, description="pause before each point, so that requests still queued from the previous one do not count against it")
    history_len: int = Field(20, ge=1, description="items per history of the HTTP requests")
    batch_window_ms: float = Field(1.0, ge=0, description="SEMREC_BATCH_WINDOW_MS of the served ranker (0: off)")
    batch_adaptive: bool = Field(True, description="SEMREC_BATCH_ADAPTIVE of the served ranker (the window opens only for company on its way)")
    batch_on_thread: bool = Field(False, description="SEMREC_BATCH_ON_THREAD of the served ranker (false: batches run on the event loop)")
    http_parser: Literal["httptools", "h11"] = Field("httptools", description="SEMREC_HTTP_PARSER of the served ranker")
    peer: bool = Field(True, description="also serve the eager-PyTorch peer (history, smallest size, first index, 1 worker)")
    pin: bool = Field(True, description="pin the server and wrk to disjoint cores when there are more cores than workers")
    hnsw_expansion_add: int = Field(64, ge=8, description="HNSW build breadth of the bench bundles (cached with them)")
    ann_threshold: int = Field(50_000, ge=0, description="SEMREC_ANN_THRESHOLD of the served ranker")
    threads: int = Field(1, ge=1, description="ONNX Runtime threads of the ranker (SEMREC_ORT_THREADS), served and in process")
    tag: str = Field("", description="suffix of the results files (ranker-inprocess<tag>.json, ranker-http<tag>.json)")
    slo_p99_ms: float = Field(10.0, gt=0, description="p99 latency objective (ms), drawn on the plot")
    ann_expansion: int = Field(256, ge=8, description="SEMREC_ANN_EXPANSION of the served ranker")
    ann_rescore: int = Field(32, ge=1, description="SEMREC_ANN_RESCORE of the served ranker (HNSW hits rescored in float32)")
    ann_dtype: Literal["f16", "i8"] = Field("f16", description="vector storage of the bench bundles' HNSW index "
                                            "(`semrec publish --ann-dtype`; cached per dtype)")
    seed: int = Field(0, description="seed of weights, vectors and histories")
    results_dir: Path = Field(Path("results"), description="where ranker-inprocess.json and ranker-http.json go")


    @field_validator("backbones")
    @classmethod
    def _known_backbones(cls, value: list[str]) -> list[str]:
        unknown = set(value) - {"sasrec", "gru4rec"}
        if unknown:
            raise ValueError(f"unknown backbones {sorted(unknown)}; use sasrec, gru4rec")
        return value


def _histories(n_items: int, max_len: int, count: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed + 1)
    return [[f"i{j}" for j in rng.integers(1, n_items + 1, rng.integers(5, max_len + 1))] for _ in range(count)]


def _percentiles(values: list[float]) -> dict[str, float]:
    ms = np.asarray(values) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def _time_engine(engine, histories: list[list[str]], k: int) -> tuple[dict[str, float], list[np.ndarray]]:
    """Wall-clock p50/p99 (what a caller waits) and CPU-time p50/p99 of the calling thread (the work done,
    robust to other processes taking the cores) of `Engine.recommend`, plus its stages' wall times."""
    for h in histories[:20]:
        engine.recommend(h, k)
    total, cpu, encode, topk, rows = [], [], [], [], []
    for h in histories:
        start, start_cpu = time.perf_counter(), time.thread_time()
        result = engine.recommend(h, k)
        total.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
        encode.append(result.encode_s)
        topk.append(result.topk_s)
        rows.append(result.rows)
    metrics = _percentiles(total)
    metrics.update({f"cpu_{k_}": v for k_, v in _percentiles(cpu).items()})
    metrics.update({f"encode_{k_}": v for k_, v in _percentiles(encode).items()})
    metrics.update({f"topk_{k_}": v for k_, v in _percentiles(topk).items()})
    return metrics, rows


def _near_catalogue_recall(engine, vectors: np.ndarray, count: int, seed: int, k: int = 10) -> float:
    """Recall@k of the engine's index vs exact for queries near the catalogue (normalised mean of 3 random
    items plus noise), as a trained encoder's outputs are; the random-weight encoder's are not."""
    rng = np.random.default_rng(seed + 2)
    queries = vectors[rng.integers(0, len(vectors), (count, 3))].mean(1)
    queries += rng.standard_normal(queries.shape, dtype=np.float32) / (4 * np.sqrt(vectors.shape[1]))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    none = np.empty(0, np.int64)
    hits = [np.isin(engine.index.search(q, k, none)[0], engine.exact.search(q, k, none)[0]).mean() for q in queries]
    return round(float(np.mean(hits)), 4)


def bench_in_process(config: RankerBenchConfig, bundles: dict) -> list:
    from semrec.results import RunResult
    from semrec.store.ann import build_hnsw

    from semrec_ranker.bench.synthetic import synthetic_bundle
    from semrec_ranker.engine import Engine

    runs = []
    indexes: dict[int, tuple[bytes, float]] = {}
    for n in config.sizes:
        histories = _histories(n, config.max_len, config.queries, config.seed)
        for backbone in config.backbones:
            start = time.perf_counter()
            bundle = synthetic_bundle(n, config.dim, config.max_len, backbone, config.seed,
                                      encoder_graph=config.encoder_graph)
            build_s = time.perf_counter() - start
            engine = Engine("bench", bundle, ort_threads=config.threads, ann_threshold=10**12)
            metrics, exact_rows = _time_engine(engine, histories, config.k)
            echo(f"{backbone:8s} {n:>9} items exact: {metrics}")
            common = {**config.to_dict(), "n_items": n, "blas_threads": 1,
                      "load_average_1m": round(os.getloadavg()[0], 1), "nice": os.nice(0),
                      "provider": engine.encoder.provider, 
                      "bundle_build_s": round(build_s, 1)}  # fmt: skip
            runs.append(RunResult(dataset=f"synthetic-{n}x{config.dim}", method="onnxruntime", backbone=backbone,
                                  protocol="in-process-exact", metrics=metrics, config=common))  # fmt: skip
            if n in config.ann_sizes:
                if n not in indexes:
                    echo(f"building HNSW over {n} items")
                    t = time.perf_counter()
                    indexes[n] = (build_hnsw(bundle.item_vectors, progress=True, dtype=config.ann_dtype),
                                  time.perf_counter() - t)  # fmt: skip
                bundle.ann_index = indexes[n][0]
                for expansion in config.ann_expansions:
                    ann_engine = Engine("bench", bundle, ort_threads=config.threads, ann_threshold=0,
                                        ann_expansion=expansion, ann_rescore=config.ann_rescore)  # fmt: skip
                    ann_metrics, ann_rows = _time_engine(ann_engine, histories, config.k)
                    recall = np.mean([np.isin(a, e).mean() for a, e in zip(ann_rows, exact_rows, strict=True)])
                    ann_metrics["recall_at_10_encoder_queries"] = round(float(recall), 4)
                    ann_metrics["recall_at_10_near_catalogue_queries"] = _near_catalogue_recall(
                        ann_engine, bundle.item_vectors, config.queries, config.seed
                    )
                    ann_metrics["index_build_s"] = round(indexes[n][1], 1)
                    echo(f"{backbone:8s} {n:>9} items hnsw ef={expansion}: {ann_metrics}")
                    runs.append(RunResult(dataset=f"synthetic-{n}x{config.dim}", method="onnxruntime",
                                          backbone=backbone, protocol=f"in-process-hnsw-ef{expansion}",
                                          metrics=ann_metrics,
                                          config={**common, "hnsw": {"connectivity": 16, "expansion_add": 128,
                                                                     "expansion_search": expansion, "dtype": config.ann_dtype,
                                                                     "rescore": config.ann_rescore}}))  # fmt: skip
            del engine
    return runs


def _wait_ready(url: str, process: subprocess.Popen, timeout: float = 600) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError("ranker process exited")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("ranker not ready")


def _server_processes(process: subprocess.Popen) -> list:
    """The live processes that serve requests: uvicorn's workers, or the process itself with one worker."""
    import psutil

    root = psutil.Process(process.pid)
    children = []
    for child in root.children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(child.cmdline()):
                children.append(child)
        except psutil.Error:  # gone meanwhile
            pass
    return children or [root]


def _wait_workers(process: subprocess.Popen, workers: int, directory: Path, timeout: float = 600) -> list:
    """The worker processes, once there are `workers` of them and each maps the shared arrays (/readyz
    answers from whichever worker accepts first, so it cannot tell)."""
    import psutil

    deadline = time.time() + timeout
    while time.time() < deadline:
        processes = _server_processes(process)
        try:
            if len(processes) == workers and all(any(str(directory) in m.path for m in p.memory_maps())
                                                 for p in processes):  # fmt: skip
                time.sleep(1.0)  # the warm-up call after the mapping
                return processes
        except psutil.Error:  # a worker starting or restarting: look again
            pass
        time.sleep(0.5)
    raise RuntimeError(f"not all {workers} ranker workers loaded the bundle")


def _cpu_s(processes: list) -> float:
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except Exception:  # noqa: BLE001 - a worker gone meanwhile
            pass
    return total


def _memory(processes: list, shared_dir: Path | None = None) -> dict[str, float]:
    """Per worker and summed, in MiB (psutil): RSS; PSS (shared pages split between the processes that map
    them); USS (pages only this process maps: with shared files that includes file pages no other worker
    has touched yet, so it overstates what a worker costs); anonymous memory (heap, arenas: what one more
    worker really costs, the shared files aside). Plus the size of the shared files (in the page cache once)."""
    out: dict[str, float] = {}

    def add(name: str, n: int, value: float) -> None:
        out[f"worker{n}_{name}_mib"] = round(value / 2**20, 1)
        out[f"total_{name}_mib"] = round(out.get(f"total_{name}_mib", 0.0) + value / 2**20, 1)

    for n, proc in enumerate(processes):
        info = proc.memory_full_info()
        for field in ("rss", "pss", "uss"):
            if getattr(info, field, None) is not None:
                add(field, n, getattr(info, field))
        add("anonymous", n, sum(getattr(m, "anonymous", 0) for m in proc.memory_maps(grouped=True)))
    if shared_dir is not None and shared_dir.exists():
        files = [f for f in shared_dir.rglob("*") if f.is_file() and ".staging-" not in str(f)]
        out["shared_files_mib"] = round(sum(f.stat().st_size for f in files) / 2**20, 1)
    return out


def _cpus(workers: int, pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(server cores, wrk cores): disjoint when the machine has more cores than workers, else (None, None)."""
    cores = sorted(os.sched_getaffinity(0))
    if not pin or len(cores) <= workers:
        return None, None
    return set(cores[:workers]), set(cores[workers:])


def bench_bundle(config: RankerBenchConfig, n_items: int, with_ann: bool):
    """The HTTP test's synthetic bundle, cached under $SEMREC_CACHE/bench (deterministic from the seed: built
    once, reused with its HNSW index). A cached bundle of the other graph form (or of a version that did not
    record one: all positions) gets its encoder re-exported from the same seed; vectors and index are kept."""
    from semrec.bundle import Bundle
    from semrec.store.ann import build_hnsw

    from semrec_ranker.bench.synthetic import synthetic_bundle, synthetic_encoder

    cache = Path(os.environ.get("SEMREC_CACHE", Path.home() / ".cache" / "semrec")) / "bench" / (
        f"http-{config.http_backbone}-{n_items}x{config.dim}-len{config.max_len}-seed{config.seed}"
        + ("" if config.ann_dtype == "f16" else f"-ann{config.ann_dtype}")
    )
    bundle = Bundle.load(cache) if (cache / "metadata.json").exists() else None
    if bundle is None:
        echo(f"building a synthetic {config.http_backbone} bundle of {n_items} items")
        bundle = synthetic_bundle(n_items, config.dim, config.max_len, config.http_backbone, config.seed,
                                  encoder_graph=config.encoder_graph)  # fmt: skip
    elif bundle.metadata.get("encoder_graph", "all-positions") != config.encoder_graph:
        echo(f"re-exporting the cached bundle's encoder as {config.encoder_graph}")
        bundle.encoder_onnx = synthetic_encoder(config.http_backbone, n_items, config.dim, config.max_len,
                                                config.seed, config.encoder_graph)  # fmt: skip
        bundle.metadata["encoder_graph"] = config.encoder_graph
    if with_ann and bundle.ann_index is None:
        echo(f"building HNSW over {n_items} items (cached afterwards)")
        bundle.ann_index = build_hnsw(bundle.item_vectors, expansion_add=config.hnsw_expansion_add, progress=True,
                                      dtype=config.ann_dtype)  # fmt: skip
    bundle.save(cache)
    return bundle


def _floor(config: RankerBenchConfig, bundle, index: str, histories: list[list[str]]) -> dict[str, float]:
    """In-process encode + top-k of the same requests with the served settings: what no server can beat."""
    from semrec_ranker.engine import Engine

    engine = Engine("floor", bundle, ort_threads=config.threads, ann_expansion=config.ann_expansion,
                    ann_rescore=config.ann_rescore, ann_threshold=0 if index == "hnsw" else 10**12)  # fmt: skip
    metrics, _ = _time_engine(engine, histories[: config.queries], config.k)
    served = f"hnsw-{engine.index.dtype}" if engine.ann else engine.index_kind
    floor = {"floor_p50_ms": metrics["p50_ms"], "floor_p99_ms": metrics["p99_ms"], "floor_index": served}
    if engine.ann:  # what the served index finds of the exact top 10
        floor["recall_at_10_near_catalogue_queries"] = _near_catalogue_recall(engine, bundle.item_vectors,
                                                                              config.queries, config.seed)  # fmt: skip
    return floor


def _serve(config: RankerBenchConfig, redis_url: str, catalog: str, index: str, workers: int, encoder: str,
           cpus: set[int] | None, shared_dir: Path) -> tuple[subprocess.Popen, str]:  # fmt: skip
    from semrec.store.local import _free_port

    port = _free_port()
    env = {**os.environ, "SEMREC_REDIS_URL": redis_url, "SEMREC_CATALOG": catalog, "SEMREC_LOG_LEVEL": "warning",
           "SEMREC_ANN_THRESHOLD": "0" if index == "hnsw" else str(10**12), "SEMREC_ORT_THREADS": str(config.threads),
           "SEMREC_ANN_EXPANSION": str(config.ann_expansion), "SEMREC_ANN_RESCORE": str(config.ann_rescore),
           "SEMREC_BATCH_WINDOW_MS": str(config.batch_window_ms),
           "SEMREC_BATCH_ADAPTIVE": str(config.batch_adaptive).lower(),
           "SEMREC_BATCH_ON_THREAD": str(config.batch_on_thread).lower(), "SEMREC_HTTP_PARSER": config.http_parser,
           "SEMREC_SHARED_DIR": str(shared_dir), "SEMREC_HISTORY_CAP": str(max(config.history_len, 50))}  # fmt: skip
    if encoder == "onnx":
        cmd = [sys.executable, "-m", "semrec.cli", "serve", "--port", str(port), "--workers", str(workers)]
    else:
        cmd = [sys.executable, "-m", "semrec_ranker.bench.server", "--encoder", encoder, "--backbone",
               config.http_backbone, "--n-items", catalog.split("-")[-1], "--dim", str(config.dim), "--max-len",
               str(config.max_len), "--seed", str(config.seed), "--encoder-graph", config.encoder_graph,
               "--port", str(port)]  # fmt: skip
    preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    process = subprocess.Popen(cmd, env=env, preexec_fn=preexec)
    return process, f"http://127.0.0.1:{port}"


def _series(config: RankerBenchConfig, redis_url: str, catalog: str, n_items: int, index: str, workers: int,
            encoder: str, bodies: dict[str, Path], floor: dict[str, float], workdir: Path) -> list:  # fmt: skip
    from semrec.results import RunResult

    from semrec_ranker.bench.wrk import run_wrk

    server_cpus, wrk_cpus = _cpus(workers, config.pin)
    shared = workdir / f"shared-{n_items}-{index}-{workers}-{encoder}"  # this server's files alone
    process, url = _serve(config, redis_url, catalog, index, workers, encoder, server_cpus, shared)
    runs = []
    try:
        _wait_ready(url, process)
        processes = _wait_workers(process, workers, shared)
        memory = _memory(processes, shared)
        if config.warmup_s:
            run_wrk(url, bodies["history"], 4, config.warmup_s, config.wrk_threads, workdir, wrk_cpus)
        kinds = config.http_kinds if encoder == "onnx" else ["history"]
        points = [(c, None) for c in config.connections] + [(config.rate_connections, r) for r in config.rates]
        for kind in kinds:
            for connections, rate in points:
                time.sleep(config.settle_s)  # the previous point's backlog drains before this one starts
                cpu_before = _cpu_s(processes)
                point = run_wrk(url, bodies[kind], connections, config.duration_s, config.wrk_threads, workdir,
                                wrk_cpus, rate=rate)  # fmt: skip
                cpu_ms = (_cpu_s(processes) - cpu_before) * 1000 / max(point.requests, 1)
                metrics = {**point.__dict__, "server_cpu_ms_per_request": round(cpu_ms, 3), **floor,
                           "p99_over_floor_p99": round(point.p99_ms / floor["floor_p99_ms"], 2),
                           "load_average_1m": round(os.getloadavg()[0], 2)}  # fmt: skip
                metrics.pop("floor_index", None)
                offered = "closed loop" if rate is None else f"offered {rate:g} req/s, late {point.late_fraction:.1%}"
                echo(f"{encoder:11s} {n_items:>8} items {index:5s} {workers} worker(s) {kind:7s} c={connections:<3} "
                     f"{offered}: {point.rps:>7} req/s p50 {point.p50_ms} p90 {point.p90_ms} p99 {point.p99_ms} ms, "
                     f"errors {point.errors}, floor p99 {floor['floor_p99_ms']} ms, CPU {cpu_ms:.2f} ms/req, "
                     f"load {metrics['load_average_1m']}")  # fmt: skip
                runs.append(RunResult(
                    dataset=f"synthetic-{n_items}x{config.dim}", method="onnxruntime" if encoder == "onnx" else encoder,
                    backbone=config.http_backbone, protocol="http-wrk",
                    metrics={k: float(v) for k, v in metrics.items() if isinstance(v, int | float)},
                    config={"kind": kind, "index": index, "served_index": floor.get("floor_index"), "workers": workers,
                            "connections": connections, "mode": "closed-loop" if rate is None else "fixed-rate",
                            "offered_rps": rate, "duration_s": config.duration_s,
                            "wrk_threads": config.wrk_threads, "server_cpus": sorted(server_cpus or []),
                            "wrk_cpus": sorted(wrk_cpus or []), "pinned": server_cpus is not None,
                            "batch_window_ms": config.batch_window_ms, "batch_adaptive": config.batch_adaptive,
                            "batch_on_thread": config.batch_on_thread, "encoder_graph": config.encoder_graph,
                            "http_parser": config.http_parser, "history_len": config.history_len,
                            "ann_expansion": config.ann_expansion, "ann_rescore": config.ann_rescore,
                            "memory_at_start": memory, "k": config.k},
                ))  # fmt: skip
        memory_after = _memory(processes, shared)
        for run in runs:
            run.config["memory_after"] = memory_after
            run.metrics.update({f"mem_{k}": v for k, v in memory_after.items() if k.startswith("total_")})
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    return runs


def bench_http(config: RankerBenchConfig) -> list:
    import tempfile

    import orjson
    from semrec.settings import redis_settings
    from semrec.store import publish_bundle, write_histories
    from semrec.store.local import local_redis

    from semrec_ranker.bench.wrk import wrk_binary

    wrk_binary()  # fail (exit 2, with the apt-get line) before building anything
    runs = []
    with tempfile.TemporaryDirectory(prefix="semrec-bench-http-") as tmp:
        workdir = Path(tmp)
        for n_items in config.http_items:
            bundle = bench_bundle(config, n_items, "hnsw" in config.http_indexes)
            rng = np.random.default_rng(config.seed + 3)
            histories = [[f"i{j}" for j in rng.integers(1, n_items + 1, config.history_len)] for _ in range(2000)]
            bodies = {"history": workdir / f"history-{n_items}.jsonl", "user": workdir / f"user-{n_items}.jsonl"}
            bodies["history"].write_bytes(b"\n".join(orjson.dumps({"history": h, "k": config.k}) for h in histories))
            bodies["user"].write_bytes(b"\n".join(orjson.dumps({"user_id": f"u{u}", "k": config.k})
                                                  for u in range(len(histories))))  # fmt: skip
            catalog = f"bench-{n_items}"
            with local_redis() as redis_url:
                client = redis_settings(redis_url).client()
                publish_bundle(client, catalog, bundle, progress=True)
                write_histories(client, catalog, ((f"u{u}", h) for u, h in enumerate(histories)), cap=200, ttl_s=0)
                client.close()
                for index in config.http_indexes:
                    floor = _floor(config, bundle, index, histories)
                    echo(f"in-process floor {n_items} items {index}: {floor}")
                    for workers in config.http_workers:
                        runs += _series(config, redis_url, catalog, n_items, index, workers, "onnx", bodies, floor,
                                        workdir)  # fmt: skip
                    if config.peer and n_items == config.http_items[0] and index == config.http_indexes[0]:
                        runs += _series(config, redis_url, catalog, n_items, index, 1, "torch-eager", bodies, floor,
                                        workdir)  # fmt: skip
            del bundle
    return runs


def plot_http(runs: list, slo_ms: float, path: Path) -> Path | None:
    """p99 against the achieved rate, one line per (server, size, index, workers, kind) over the connection
    counts (PNG); skipped without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    series: dict[str, list] = {}
    for run in runs:
        c = run.config
        label = (f"{run.method} {run.dataset.split('-')[1].split('x')[0]} {c['index']} {c['workers']}w "
                 f"{c['kind']}{' fixed-rate' if c.get('offered_rps') else ''}")  # fmt: skip
        series.setdefault(label, []).append((run.metrics["rps"], run.metrics["p99_ms"]))
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, points in series.items():
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=label, markersize=3)
    ax.axhline(slo_ms, color="red", linewidth=0.8, label=f"p99 {slo_ms:g} ms")
    ax.set(xlabel="achieved req/s (wrk: closed loop over connection counts, or fixed offered rates)", ylabel="p99 latency (ms)", yscale="log",
           title="POST /recommend under wrk on loopback")  # fmt: skip
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def bench_ranker(config: RankerBenchConfig) -> list[Path]:
    from semrec.results import write_results
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")  # as the served ranker does (SEMREC_BLAS_THREADS)
    paths = []
    bundles: dict = {}
    if config.sizes:
        runs = bench_in_process(config, bundles)
        paths.append(write_results(config.results_dir / f"ranker-inprocess{config.tag}.json", runs))
        echo(f"results written to {paths[-1]}")
    if config.http:
        runs = bench_http(config)
        paths.append(write_results(config.results_dir / f"ranker-http{config.tag}.json", runs))
        echo(f"results written to {paths[-1]}")
        plot = plot_http(runs, config.slo_p99_ms, config.results_dir / f"ranker-http{config.tag}.png")
        if plot is not None:
            echo(f"plot written to {plot}")
    return paths
