"""The ranker's FastAPI app: the bundle is loaded in the lifespan hook and hot-reloaded in the background.

`create_app()` reads settings from the environment (`SEMREC_*`, see core/config.py); `semrec serve` runs it
with uvicorn. If no bundle is published yet the app still starts: /readyz answers 503 until the first
publish is picked up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from redis.backoff import NoBackoff
from redis.retry import Retry
from semrec.bundle import Bundle
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from semrec_ranker.api.deps import RankerState
from semrec_ranker.api.responses import OrjsonResponse
from semrec_ranker.api.routes import admin, events, health, items, recommend
from semrec_ranker.core.config import RankerSettings, get_settings
from semrec_ranker.core.metrics import Metrics
from semrec_ranker.core.middleware import ObservabilityMiddleware
from semrec_ranker.core.redis_calls import RedisCalls
from semrec_ranker.core.redis_health import RedisHealth
from semrec_ranker.engine import BundleHolder, Engine, Reloader
from semrec_ranker.engine.batcher import InlineBatcher, MicroBatcher
from semrec_ranker.engine.encoder import SequenceEncoder
from semrec_ranker.engine.reloader import ReloadOutcome

log = logging.getLogger("semrec.ranker")

EncoderFactory = Callable[[Bundle], SequenceEncoder]


def _limit_blas_threads(threads: int) -> None:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with the ranker extra
        return
    threadpool_limits(limits=threads, user_api="blas")


def _printable(value: object) -> object:
    """Validation error parts as text a JSON response can carry (lone surrogates escaped)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value if isinstance(value, int | float | bool | None) else _printable(str(value))


def create_app(settings: RankerSettings | None = None, encoder_factory: EncoderFactory | None = None) -> FastAPI:
    settings = (settings or get_settings()).check()
    metrics = Metrics()
    holder = BundleHolder()
    client = settings.client()  # the reloader's: bundle reads, socket timeout SEMREC_REDIS_TIMEOUT_S
    # the request path's: one try, a short timeout; a hung Redis costs a request at most this long
    request_timeout = settings.redis_request_timeout_s
    request_client = settings.client(socket_timeout=request_timeout, socket_connect_timeout=request_timeout,
                                     retry=Retry(NoBackoff(), 0), max_connections=settings.redis_pool_size + 1)  # + the ping; fmt: skip
    redis_health = RedisHealth(request_client, settings.redis_health_interval_s)
    redis_calls = RedisCalls(request_client, settings.redis_pool_size)

    def build_engine(version: str, bundle: Bundle) -> Engine:
        return Engine(
            version,
            bundle,
            ort_threads=settings.ort_threads,
            device=settings.device,
            ann_threshold=settings.ann_threshold,
            ann_expansion=settings.ann_expansion,
            ann_rescore=settings.ann_rescore,
            encoder=encoder_factory(bundle) if encoder_factory else None,
            exact_kernel=settings.exact_kernel,
            int8_min_items=settings.int8_min_items,
            rescore_candidates=settings.rescore_candidates,
            topk_threads=settings.topk_threads,
            shared_dir=settings.shared_dir,
            int8_prepack=settings.int8_prepack,
        )

    def on_outcome(outcome: ReloadOutcome) -> None:
        if outcome.status in ("loaded", "failed", "fallback"):
            metrics.reloads.labels(outcome.status).inc()
        if outcome.status in ("loaded", "fallback") and holder.engine is not None:
            metrics.bundle_loaded(holder.engine.version, holder.engine.n_items, holder.engine.index_kind,
                                  settings.catalog)  # fmt: skip

    reloader = Reloader(client, settings.catalog, holder, build_engine, settings.poll_interval_s, on_outcome,
                        signing_key=settings.signing_key())  # fmt: skip
    batcher = None
    if settings.batch_window_ms > 0:
        batcher_class = MicroBatcher if settings.batch_on_thread else InlineBatcher
        batcher = batcher_class(settings.batch_window_ms / 1000, settings.batch_max, metrics.batch_size.observe,
                                adaptive=settings.batch_adaptive)  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        _limit_blas_threads(settings.blas_threads)
        log.info("ranker for catalogue %s, redis %s%s", settings.catalog, settings.redacted_url(),
                 ", bundle signatures required" if reloader.signing_key else "")  # fmt: skip
        redis_health.start()
        outcome = await run_in_threadpool(reloader.reload)
        if outcome.status not in ("loaded", "fallback"):
            log.warning("no bundle at start-up (%s: %s); /readyz is 503 until one is published",
                        outcome.status, outcome.detail)  # fmt: skip
        reloader.start()
        try:
            yield
        finally:
            if batcher is not None:
                await batcher.close()
            reloader.stop()
            redis_health.stop()
            client.close()
            redis_calls.close()

    docs = {} if settings.docs_enabled else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(
        **docs,
        title="semrec ranker",
        version="0.1.0",
        description="Next-item recommendations from a sequence encoder (ONNX) and a cosine top-k.",
        lifespan=lifespan,
    )
    app.state.ranker = RankerState(settings=settings, metrics=metrics, holder=holder, redis=redis_calls,
                                   reloader=reloader, health=redis_health, batcher=batcher)  # fmt: skip
    for module in (recommend, events, items, health, admin):
        app.include_router(module.router)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes,
                       max_discard_bytes=settings.max_discard_bytes)  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> OrjsonResponse:
        errors = [{"loc": [_printable(p) for p in e.get("loc", ())], "msg": _printable(str(e.get("msg", ""))),
                   "type": e.get("type")} for e in exc.errors()]  # fmt: skip
        return OrjsonResponse({"detail": errors}, status_code=422)

    return app
