"""Ranker settings, from the environment (prefix `SEMREC_`) via pydantic-settings. Documented in docs/serving.md."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from semrec.settings import RedisSettings


class RankerSettings(RedisSettings):
    catalog: str = Field("demo", description="catalogue whose current bundle is served")
    admin_token: SecretStr | None = Field(None, description="bearer token for POST /admin/reload (unset: disabled)")
    history_cap: int = Field(200, ge=1, le=10_000, description="items kept per user history and accepted per request")
    poll_interval_s: float = Field(5.0, gt=0, description="how often the pointer is polled besides pub/sub")
    ort_threads: int = Field(1, ge=1, le=64, description="ONNX Runtime intra-op threads per inference")
    blas_threads: int = Field(1, ge=1, le=64, description="BLAS threads for the exact top-k matrix product")
    ann_threshold: int = Field(
        50_000, ge=0, description="use the bundle's ANN index when the catalogue has at least this many items"
    )
    ann_expansion: int = Field(256, ge=8, le=4096, description="HNSW search breadth (higher: better recall, slower)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when onnxruntime-gpu sees a GPU")
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="request bodies above this get 413")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")


@lru_cache
def get_settings() -> RankerSettings:
    return RankerSettings()
