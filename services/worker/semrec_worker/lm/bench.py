"""`semrec bench embed`: items/s of each embedding backend on this machine, bf16 autocast on and off.

Each measurement embeds the same `n_items` captions (from `--data`) after `warmup_batches` untimed
batches, and reports items/s and the total seconds. vllm backends run only where CUDA and vllm exist.
"""

from __future__ import annotations

import os
import time

from semrec.cli_builder import echo
from semrec.results import RunResult, write_results

from semrec_worker.core.runtime import Precision
from semrec_worker.data.dataset import load_dataset
from semrec_worker.data.text import caption
from semrec_worker.lm.backends import (
    SentenceTransformersBackend,
    TransformersBackend,
    VLLMBackend,
    default_device,
    model_directory,
    vllm_available,
)
from semrec_worker.lm.loader import load_language_model


def _time_embed(backend, texts: list[str], warmup: list[str]) -> float:
    if warmup:
        backend.embed(warmup)
    start = time.perf_counter()
    backend.embed(texts)
    return time.perf_counter() - start


def run_embed_bench(config) -> list[RunResult]:
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    dataset = load_dataset(config)
    items = dataset.items[: config.n_items]
    texts = [caption(item, max_tokens=config.max_tokens) for item in items]
    warmup = texts[: config.warmup_batches * config.batch_size]
    device = default_device()
    echo(f"bench embed: {len(texts)} captions of {dataset.name}, batch {config.batch_size}, device {device}, "
         f"torch threads {torch.get_num_threads()}")
    lm = None
    runs: list[RunResult] = []
    for name in config.backends:
        kind, _, pooling = name.partition("-")
        settings: list[Precision] = list(config.precision) if kind == "transformers" else ["fp32"]
        for precision in settings:
            if kind == "vllm" and not vllm_available():
                echo(f"{name}: skipped (needs CUDA and the vllm package)")
                continue
            if kind == "transformers":
                lm = lm or load_language_model(config.llm)
                backend = TransformersBackend(lm, pooling, config.batch_size, config.max_tokens, precision, device,
                                              progress=False)
                precision = backend.precision  # auto resolved
                label = f"{name} {precision}"
            elif kind == "vllm":
                backend = VLLMBackend(model_directory(config.llm), pooling, max_length=config.max_tokens,
                                      progress=False)
                precision, label = "bf16", f"{name} bf16"
            else:
                backend = SentenceTransformersBackend(None, config.batch_size, device, progress=False)
                label = f"{name} (all-MiniLM-L6-v2) fp32"
            seconds = _time_embed(backend, texts, warmup)
            rate = len(texts) / seconds
            load = os.getloadavg()[0]
            echo(f"{label}: {rate:.1f} items/s ({seconds:.1f} s for {len(texts)}; load average {load:.1f})")
            runs.append(
                RunResult(
                    dataset=dataset.name,
                    method=f"embed:{name}",
                    backbone=backend.name,
                    protocol="throughput",
                    metrics={"items_per_s": round(rate, 2), "seconds": round(seconds, 2), "items": len(texts)},
                    wall_s=round(seconds, 2),
                    config={**config.to_dict(), "backend": name, "precision": precision, "device": device,
                            "torch_threads": torch.get_num_threads(), "load_average_1m": round(load, 2),
                            "cpu_count": os.cpu_count()},
                )
            )
            if kind == "vllm":
                del backend
    write_results(config.results, runs)
    echo(f"results written to {config.results}")
    return runs
