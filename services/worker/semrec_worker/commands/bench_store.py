"""`semrec bench store`: publish and load times of bundles in Redis by catalogue size and vector dtype."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator
from semrec.bundle import Bundle
from semrec.cli_builder import CommandGroups, config_command, echo
from semrec.config import JobConfig
from semrec.results import RunResult, write_results
from semrec.settings import redis_settings
from semrec.store import load_bundle, publish_bundle
from semrec.store.local import local_redis
from semrec.vocabulary import AcceptsOldNames, OldName


class StoreBenchConfig(AcceptsOldNames, JobConfig):
    old_names: ClassVar[dict[str, str | OldName]] = {"out": "results"}

    sizes: list[int] = Field([10_000, 100_000, 1_000_000], description="catalogue sizes")
    dim: int = Field(256, ge=1, description="vector width")
    dtypes: list[str] = Field(["float32", "float16"], description="vector dtypes: float32, float16")
    repeats: int = Field(2, ge=1, description="publish+load repetitions per setting (the best is reported too)")
    chunk_mib: float = Field(8.0, gt=0, description="chunk size in MiB")
    redis: str | None = Field(None, description="Redis URL (default: start a throwaway redis-server on loopback)")
    results: Path = Field(Path("results/store-publish.json"), description="results JSON")

    @field_validator("dtypes")
    @classmethod
    def _known_dtypes(cls, value: list[str]) -> list[str]:
        if set(value) - {"float32", "float16"}:
            raise ValueError("dtypes must be float32 and/or float16")
        return value


def bench_store(config: StoreBenchConfig) -> Path:
    import contextlib
    import statistics

    import numpy as np

    runs = []
    context = contextlib.nullcontext(config.redis) if config.redis else local_redis()
    with context as url:
        client = redis_settings(url).client()
        for n in config.sizes:
            rng = np.random.default_rng(0)
            vectors = rng.standard_normal((n, config.dim), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            bundle = Bundle(
                encoder_onnx=os.urandom(2**20),  # placeholder bytes: the store does not parse the encoder
                item_ids=[f"item-{i}" for i in range(n)],
                item_vectors=vectors,
                popularity=rng.random(n, dtype=np.float32),
                metadata={"max_len": 50, "dim": config.dim, "backbone": "bench"},
            )
            for dtype in config.dtypes:
                publish_s, load_s, steps = [], [], []
                for _ in range(config.repeats):
                    report = publish_bundle(client, f"bench{n}", bundle, dtype=dtype, keep=1,
                                            chunk_bytes=int(config.chunk_mib * 2**20))
                    loaded = load_bundle(client, f"bench{n}")
                    publish_s.append(report.seconds["total_s"])
                    load_s.append(loaded.seconds)
                    steps.append(report.seconds)
                    del loaded
                metrics = {
                    "publish_s_median": round(statistics.median(publish_s), 3),
                    "publish_s_best": round(min(publish_s), 3),
                    "load_s_median": round(statistics.median(load_s), 3),
                    "load_s_best": round(min(load_s), 3),
                    "write_s": steps[-1]["write_s"],
                    "verify_s": steps[-1]["verify_s"],
                    "switch_s": steps[-1]["switch_s"],
                    "mib": round(report.bytes_written / 2**20, 1),
                }
                echo(f"{n:>9} items x {config.dim} {dtype}: publish {metrics['publish_s_median']}s "
                     f"(write {metrics['write_s']}s, verify {metrics['verify_s']}s), load {metrics['load_s_median']}s, "
                     f"{metrics['mib']} MiB")
                runs.append(RunResult(dataset=f"synthetic-{n}x{config.dim}", method="redis-store", protocol=dtype,
                                      metrics=metrics, wall_s=round(sum(publish_s) + sum(load_s), 2),
                                      config={**config.to_dict(), "n_items": n, "dtype": dtype,
                                              "redis": "local redis-server on loopback (no persistence)",
                                              "load_average_1m": round(os.getloadavg()[0], 1)}))
            client.flushdb()
    path = write_results(config.results, runs)
    echo(f"results written to {path}")
    return path


def register(groups: CommandGroups) -> None:
    config_command(groups.bench, "store", StoreBenchConfig, bench_store,
                   "Publish/load times of bundles in Redis (10k..1M items, float32/float16).")
