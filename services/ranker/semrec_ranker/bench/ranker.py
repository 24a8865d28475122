"""`semrec bench ranker`: in-process latency (encode + top-k), ANN recall@10, and HTTP latency under load.

1. In process: for each backbone (SASRec-like, GRU4Rec-like; width 256, max_len 50) and catalogue size,
   `Engine.recommend` on random histories: p50/p99 of the whole call and of its two stages; with the HNSW
   index too where one is built, and its recall@10 against the exact top-10, for the encoder's queries
   (random weights: directions unrelated to the catalogue, a pessimistic case) and for queries near the
   catalogue (what a trained encoder produces). Item vectors are clustered (bench/synthetic.py).
2. Over HTTP: the ranker in its own process on loopback, the open-loop load generator (bench/loadgen.py)
   stepping the request rate up until p99 >= the SLO or a request fails; the same for the naive peer
   (the same app with a plain PyTorch eager encoder). Max sustained rate and p99 ratios are reported.
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
    http: bool = Field(True, description="run the HTTP load test")
    http_items: int = Field(100_000, ge=100, description="catalogue size of the HTTP test")
    http_backbone: Literal["sasrec", "gru4rec"] = Field("sasrec", description="encoder of the HTTP test")
    http_rates: list[int] = Field([5, 10, 15, 20, 25, 35, 50, 75, 100, 150, 200, 300, 400], description="request rates (req/s)")
    http_step_s: float = Field(8.0, gt=0, description="seconds per rate step")
    http_connections: int = Field(32, ge=1, description="keep-alive connections of the load generator")
    ann_threshold: int = Field(50_000, ge=0, description="SEMREC_ANN_THRESHOLD of the served ranker")
    threads: int = Field(1, ge=1, description="ONNX Runtime threads of the ranker (SEMREC_ORT_THREADS), served and in process")
    tag: str = Field("", description="suffix of the results files (ranker-inprocess<tag>.json, ranker-http<tag>.json)")
    slo_p99_ms: float = Field(20.0, gt=0, description="p99 latency objective (ms)")
    saturation_factor: float = Field(
        4.0, gt=1, description="keep stepping past the SLO until p99 > this x SLO, an error, or a missed rate"
    )
    ann_expansion: int = Field(256, ge=8, description="SEMREC_ANN_EXPANSION of the served ranker")
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
            bundle = synthetic_bundle(n, config.dim, config.max_len, backbone, config.seed)
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
                    indexes[n] = (build_hnsw(bundle.item_vectors, progress=True), time.perf_counter() - t)
                bundle.ann_index = indexes[n][0]
                for expansion in config.ann_expansions:
                    ann_engine = Engine("bench", bundle, ort_threads=config.threads, ann_threshold=0,
                                        ann_expansion=expansion)  # fmt: skip
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
                                                                     "expansion_search": expansion, "dtype": "f16"}}))  # fmt: skip
            if n == config.http_items and backbone == config.http_backbone:
                bundles["http"] = bundle
            del engine
    return runs


def _wait_ready(url: str, process: subprocess.Popen, timeout: float = 300) -> None:
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


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc), all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _http_series(config: RankerBenchConfig, redis_url: str, encoder: str) -> list:
    import orjson
    from semrec.store.local import _free_port

    from semrec_ranker.bench.loadgen import run_step

    port = _free_port()
    env = {**os.environ, "SEMREC_REDIS_URL": redis_url, "SEMREC_CATALOG": "bench",
           "SEMREC_ANN_THRESHOLD": str(config.ann_threshold), "SEMREC_ORT_THREADS": str(config.threads), "SEMREC_ANN_EXPANSION": str(config.ann_expansion), "SEMREC_LOG_LEVEL": "warning"}  # fmt: skip
    cmd = [sys.executable, "-m", "semrec_ranker.bench.server", "--encoder", encoder, "--backbone", config.http_backbone,
           "--n-items", str(config.http_items), "--dim", str(config.dim), "--max-len", str(config.max_len),
           "--seed", str(config.seed), "--port", str(port)]  # fmt: skip
    process = subprocess.Popen(cmd, env=env)
    url = f"http://127.0.0.1:{port}"
    steps = []
    try:
        _wait_ready(url, process)
        bodies = [orjson.dumps({"history": h, "k": config.k})
                  for h in _histories(config.http_items, config.max_len, 2000, config.seed)]  # fmt: skip
        run_step(url, "/recommend", bodies, 20, 3.0, config.http_connections)  # warm-up
        for rate in config.http_rates:
            cpu_before = _process_cpu_s(process.pid)
            step = run_step(url, "/recommend", bodies, rate, config.http_step_s, config.http_connections)
            step.server_cpu_ms_per_request = round((_process_cpu_s(process.pid) - cpu_before) * 1000 / step.sent, 3)
            steps.append(step)
            echo(f"http {encoder:12s} {rate:>5} req/s: p50 {step.p50_ms} ms, p99 {step.p99_ms} ms, "
                 f"server CPU {step.server_cpu_ms_per_request} ms/req, "
                 f"errors {step.errors} {step.error_kinds or ''}, achieved {step.achieved_rps} req/s -> {'ok' if step.passes(config.slo_p99_ms) else 'FAIL'}")  # fmt: skip
            if step.errors or step.achieved_rps < 0.95 * rate or step.p99_ms > config.saturation_factor * config.slo_p99_ms:
                break  # saturated: more load only measures the queue
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
    return steps


def bench_http(config: RankerBenchConfig, bundle) -> list:
    from semrec.bundle import Bundle
    from semrec.results import RunResult
    from semrec.settings import redis_settings
    from semrec.store import publish_bundle
    from semrec.store.ann import build_hnsw
    from semrec.store.local import local_redis

    cache = Path(os.environ.get("SEMREC_CACHE", Path.home() / ".cache" / "semrec")) / "bench" / (
        f"http-{config.http_backbone}-{config.http_items}x{config.dim}-len{config.max_len}-seed{config.seed}"
    )
    if bundle is None and (cache / "metadata.json").exists():
        bundle = Bundle.load(cache)  # deterministic from the seed: reuse it (and its HNSW index)
    if bundle is None:
        from semrec_ranker.bench.synthetic import synthetic_bundle

        bundle = synthetic_bundle(config.http_items, config.dim, config.max_len, config.http_backbone, config.seed)
    if config.http_items >= config.ann_threshold and bundle.ann_index is None:
        bundle.ann_index = build_hnsw(bundle.item_vectors, progress=True)
    bundle.save(cache)
    series = {}
    with local_redis() as redis_url:
        publish_bundle(redis_settings(redis_url).client(), "bench", bundle)
        for encoder in ("onnx", "torch-eager"):
            series[encoder] = _http_series(config, redis_url, encoder)
    runs = []
    best = {}
    for encoder, steps in series.items():
        passing = [s for s in steps if s.passes(config.slo_p99_ms)]
        best[encoder] = passing[-1] if passing else None
    def clean_rates(steps) -> set[float]:
        return {s.rate for s in steps if s.errors == 0 and s.achieved_rps >= 0.95 * s.rate}

    shared_rates = sorted(clean_rates(series["onnx"]) & clean_rates(series["torch-eager"]))
    for encoder, steps in series.items():
        top = best[encoder]
        clean = [s for s in steps if s.errors == 0 and s.achieved_rps >= 0.95 * s.rate]
        metrics = {"max_sustained_rps": top.rate if top else 0.0,
                   "max_rate_without_errors_rps": clean[-1].rate if clean else 0.0}  # fmt: skip
        if top:
            metrics.update(p50_ms_at_max=top.p50_ms, p99_ms_at_max=top.p99_ms)
        cpu = [s.server_cpu_ms_per_request for s in steps if s.server_cpu_ms_per_request is not None]
        if cpu:
            metrics["server_cpu_ms_per_request_median"] = round(float(np.median(cpu)), 3)
        if shared_rates:
            at = next(s for s in steps if s.rate == shared_rates[-1])
            metrics.update(common_rate_rps=at.rate, p50_ms_at_common_rate=at.p50_ms, p99_ms_at_common_rate=at.p99_ms)
        runs.append(RunResult(dataset=f"synthetic-{config.http_items}x{config.dim}",
                              method="onnxruntime" if encoder == "onnx" else "torch-eager",
                              backbone=config.http_backbone, protocol="http-open-loop", metrics=metrics,
                              config={**config.to_dict(), "steps": [s.__dict__ for s in steps],
                                      "server": "1 uvicorn worker (h11 with connection limits, uvloop), threadpool endpoints",
                                      "index": "hnsw" if config.http_items >= config.ann_threshold else "exact",
                                      "load_generator": "open-loop raw asyncio HTTP/1.1 keep-alive, same machine, loopback",
                                      "nice": os.nice(0)}))  # fmt: skip
    onnx, peer = runs[0].metrics, runs[1].metrics
    ratio: dict[str, float] = {}
    if peer["max_sustained_rps"]:
        ratio["max_rate_ratio_onnx_over_peer"] = round(onnx["max_sustained_rps"] / peer["max_sustained_rps"], 2)
    if peer["max_rate_without_errors_rps"]:
        ratio["max_rate_without_errors_ratio_onnx_over_peer"] = round(
            onnx["max_rate_without_errors_rps"] / peer["max_rate_without_errors_rps"], 2
        )
    if onnx.get("server_cpu_ms_per_request_median"):
        ratio["server_cpu_ratio_peer_over_onnx"] = round(
            peer["server_cpu_ms_per_request_median"] / onnx["server_cpu_ms_per_request_median"], 2
        )
    if shared_rates:
        ratio["p99_ratio_peer_over_onnx_at_common_rate"] = round(peer["p99_ms_at_common_rate"] / onnx["p99_ms_at_common_rate"], 2)
    runs.append(RunResult(dataset=f"synthetic-{config.http_items}x{config.dim}", method="onnxruntime-vs-torch-eager",
                          backbone=config.http_backbone, protocol="http-open-loop", metrics=ratio,
                          config={"load_average_1m": round(os.getloadavg()[0], 1)}))  # fmt: skip
    echo(f"http summary: {ratio}")
    return runs


def plot_http(runs: list, slo_ms: float, path: Path) -> Path | None:
    """p50/p99 against the offered rate, one line pair per server (PNG); skipped without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for run in runs:
        steps = run.config.get("steps")
        if not steps:
            continue
        rates = [s["rate"] for s in steps]
        ax.plot(rates, [s["p50_ms"] for s in steps], "o--", label=f"{run.method} p50")
        ax.plot(rates, [s["p99_ms"] for s in steps], "o-", label=f"{run.method} p99")
    ax.axhline(slo_ms, color="red", linewidth=0.8, label=f"SLO {slo_ms:g} ms")
    ax.set(xlabel="offered load (req/s, open loop)", ylabel="latency (ms)", yscale="log",
           title="POST /recommend, open-loop load on loopback, 2 shared cores")  # fmt: skip
    ax.legend(fontsize=8)
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
        runs = bench_http(config, bundles.get("http"))
        paths.append(write_results(config.results_dir / f"ranker-http{config.tag}.json", runs))
        echo(f"results written to {paths[-1]}")
        plot = plot_http(runs, config.slo_p99_ms, config.results_dir / f"ranker-http{config.tag}.png")
        if plot is not None:
            echo(f"plot written to {plot}")
    return paths
