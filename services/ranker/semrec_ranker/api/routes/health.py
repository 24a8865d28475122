"""GET /healthz (the process answers), GET /readyz (a bundle is loaded; Redis reachability as last seen by the
background check, so readiness never waits on Redis), GET /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from semrec_ranker.api.deps import RankerState, get_state
from semrec_ranker.api.models import Health, Readiness
from semrec_ranker.api.responses import OrjsonResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> OrjsonResponse:
    return OrjsonResponse({"status": "ok"})


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness, "description": "no bundle"}})
async def readyz(state: RankerState = Depends(get_state)) -> OrjsonResponse:
    redis_status = state.health.status.label
    engine = state.holder.engine
    if engine is None:
        status, code = "not_ready", 503
    else:
        status, code = ("ready" if redis_status != "unreachable" else "degraded"), 200
    body = {
        "status": status,
        "bundle": engine.describe() if engine else None,
        "redis": redis_status,
        "catalog": state.settings.catalog,
        "notice": state.reloader.notice,
    }
    return OrjsonResponse(body, status_code=code)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(state: RankerState = Depends(get_state)) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
