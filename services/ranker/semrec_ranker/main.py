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
from semrec.bundle import Bundle
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from semrec_ranker.api.deps import RankerState
from semrec_ranker.api.responses import OrjsonResponse
from semrec_ranker.api.routes import admin, events, health, items, recommend
from semrec_ranker.core.config import RankerSettings, get_settings
from semrec_ranker.core.metrics import Metrics
from semrec_ranker.core.middleware import ObservabilityMiddleware
from semrec_ranker.engine import BundleHolder, Engine, Reloader
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


def create_app(settings: RankerSettings | None = None, encoder_factory: EncoderFactory | None = None) -> FastAPI:
    settings = settings or get_settings()
    metrics = Metrics()
    holder = BundleHolder()
    client = settings.client()

    def build_engine(version: str, bundle: Bundle) -> Engine:
        return Engine(
            version,
            bundle,
            ort_threads=settings.ort_threads,
            device=settings.device,
            ann_threshold=settings.ann_threshold,
            ann_expansion=settings.ann_expansion,
            encoder=encoder_factory(bundle) if encoder_factory else None,
        )

    def on_outcome(outcome: ReloadOutcome) -> None:
        if outcome.status in ("loaded", "failed"):
            metrics.reloads.labels(outcome.status).inc()
        if outcome.status == "loaded" and holder.engine is not None:
            metrics.bundle_loaded(holder.engine.version, holder.engine.n_items)

    reloader = Reloader(client, settings.catalog, holder, build_engine, settings.poll_interval_s, on_outcome)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        _limit_blas_threads(settings.blas_threads)
        log.info("ranker for catalogue %s, redis %s", settings.catalog, settings.redacted_url())
        outcome = await run_in_threadpool(reloader.reload)
        if outcome.status != "loaded":
            log.warning("no bundle at start-up (%s: %s); /readyz is 503 until one is published",
                        outcome.status, outcome.detail)  # fmt: skip
        reloader.start()
        try:
            yield
        finally:
            reloader.stop()
            client.close()

    app = FastAPI(
        title="semrec ranker",
        version="0.1.0",
        description="Next-item recommendations from a sequence encoder (ONNX) and a cosine top-k.",
        lifespan=lifespan,
    )
    app.state.ranker = RankerState(settings=settings, metrics=metrics, holder=holder, redis=client, reloader=reloader)
    for module in (recommend, events, items, health, admin):
        app.include_router(module.router)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> OrjsonResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
                  for e in exc.errors()]  # fmt: skip
        return OrjsonResponse({"detail": errors}, status_code=422)

    return app
