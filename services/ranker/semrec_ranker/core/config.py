"""Ranker settings, from the environment (prefix `SEMREC_`) via pydantic-settings. Documented in docs/serving.md."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from semrec.errors import UserError
from semrec.settings import RedisSettings


class RankerSettings(RedisSettings):
    catalog: str = Field("demo", description="catalogue whose current bundle is served")
    admin_token: SecretStr | None = Field(None, description="bearer token for POST /admin/reload")
    admin_enabled: bool | None = Field(
        None, description="POST /admin/reload on or off (unset: on exactly when SEMREC_ADMIN_TOKEN is set; on "
        "without a token refuses to start)",
    )  # fmt: skip
    events_token: SecretStr | None = Field(None, description="bearer token required by POST /events (unset: open)")
    history_cap: int = Field(200, ge=1, le=10_000, description="items kept per user history and accepted per request")
    history_ttl_s: int = Field(
        90 * 86400, ge=0, description="user histories expire this long after their last event (0: never)"
    )
    poll_interval_s: float = Field(5.0, gt=0, description="how often the pointer is polled besides pub/sub")
    redis_request_timeout_s: float = Field(
        0.25, gt=0, le=10, description="socket timeout of the Redis calls on the request path (user_id, events)"
    )
    redis_health_interval_s: float = Field(
        1.0, gt=0, le=60, description="how often a background task pings Redis for /readyz and fail-fast"
    )
    redis_pool_size: int = Field(
        32, ge=1, le=1024, description="Redis connections (and threads) per worker for user_id reads and /events",
    )  # fmt: skip
    ort_threads: int = Field(1, ge=1, le=64, description="ONNX Runtime intra-op threads per encoder call")
    blas_threads: int = Field(1, ge=1, le=64, description="BLAS threads of the float32 scoring (rescoring, fallback)")
    batch_window_ms: float = Field(
        1.0, ge=0, le=1000, description="micro-batching: requests arriving within this window share one encoder "
        "call and one top-k pass (at most this long a wait); 0: off, each request runs on the event loop",
    )  # fmt: skip
    batch_adaptive: bool = Field(
        True, description="the batching window opens only when another request is already on its way (a lone "
        "request is never delayed); false: every quiet period's first request waits the window",
    )  # fmt: skip
    batch_on_thread: bool = Field(
        False, description="compute micro-batches on a compute thread (the event loop keeps reading requests "
        "meanwhile); false: on the event loop (no thread hand-offs; measured faster, docs/serving.md)",
    )  # fmt: skip
    batch_max: int = Field(32, ge=1, le=1024, description="at most this many requests per micro-batch")
    exact_kernel: Literal["int8", "float32"] = Field(
        "int8", description="exact top-k: int8 candidates + float32 rescoring (same results, faster) or a float32 scan"
    )
    int8_min_items: int = Field(20_000, ge=0, description="below this many items the float32 scan is used (as fast)")
    rescore_candidates: int = Field(
        256, ge=1, le=100_000, description="int8 candidates rescored in float32 (at least 2 x k; more when the "
        "exactness bound is not met)",
    )  # fmt: skip
    int8_prepack: bool = Field(
        True, description="hand the int8 matrix to ONNX Runtime as a constant, packed once for its kernel (about 2x "
        "faster scoring, measured; the packed copy lives in each worker's heap, not in the shared files)",
    )  # fmt: skip
    topk_threads: int = Field(1, ge=1, le=64, description="ONNX Runtime threads of the int8 scoring")
    shared_dir: Path | None = Field(
        None, description="memory-map the item matrix, its int8 copy and the HNSW index from files written here "
        "once per bundle, so that all workers of a host share one copy (unset: in each worker's heap; "
        "`semrec serve --workers N` with N > 1 uses a directory under the system temp dir)",
    )  # fmt: skip
    ann_threshold: int = Field(
        50_000, ge=0, description="use the bundle's ANN index when the catalogue has at least this many items"
    )
    ann_expansion: int = Field(256, ge=8, le=4096, description="HNSW search breadth (higher: better recall, slower)")
    ann_rescore: int = Field(
        32, ge=1, le=4096, description="HNSW hits rescored with the float32 vectors (at least k plus the excluded "
        "items): more hits cost nothing in the graph search and recover the items an f16 / i8 index ranks just "
        "outside the top k",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when onnxruntime-gpu sees a GPU")
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="request bodies above this get 413")
    max_discard_bytes: int = Field(
        1024 * 1024, ge=0, description="of an oversized body, read and drop up to this much before the 413 "
        "(so a client that sends its whole body first still reads the answer)",
    )  # fmt: skip
    http_parser: Literal["httptools", "h11"] = Field(
        "httptools", description="HTTP/1.1 parser: httptools (llhttp, C; the faster) or h11 (pure Python); both guarded"
    )
    max_header_bytes: int = Field(16 * 1024, ge=1024, le=1024 * 1024, description="request line + headers, at most")
    header_timeout_s: float = Field(10.0, gt=0, description="a request's line and headers must arrive within this")
    body_timeout_s: float = Field(15.0, gt=0, description="a request's body must arrive within this after its headers")
    keep_alive_s: float = Field(5.0, gt=0, description="idle keep-alive connections are closed after this")
    limit_concurrency: int = Field(
        1024, ge=1, description="open connections + running requests per worker; beyond it new requests get 503"
    )
    docs_enabled: bool = Field(True, description="serve /docs, /redoc and /openapi.json (public when on)")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")

    def check(self) -> RankerSettings:
        """Raise UserError for settings that must not start a ranker (checked outside pydantic, whose errors
        would echo the input values: secrets included)."""
        if self.admin_enabled and not self.admin_token_value():
            raise UserError("SEMREC_ADMIN_ENABLED=true needs SEMREC_ADMIN_TOKEN (there is no default token)")
        self.signing_key()  # raises for a key that is too short
        return self

    def admin_token_value(self) -> str | None:
        """The admin token when admin endpoints are on, else None."""
        token = self.admin_token.get_secret_value() if self.admin_token is not None else ""
        if self.admin_enabled is False or not token:
            return None
        return token

    def events_token_value(self) -> str | None:
        return self.events_token.get_secret_value() or None if self.events_token is not None else None


@lru_cache
def get_settings() -> RankerSettings:
    from pydantic import ValidationError

    try:
        settings = RankerSettings()
    except ValidationError as exc:
        problems = "; ".join(f"SEMREC_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise UserError(f"ranker settings: {problems}") from None
    return settings.check()
