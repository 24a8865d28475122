"""POST /admin/reload: force a reload of the catalogue's current bundle (bearer token from settings)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from semrec_ranker.api.deps import RankerState, get_state, require_admin
from semrec_ranker.api.models import ReloadResponse
from semrec_ranker.api.responses import OrjsonResponse

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])

_STATUS_CODES = {"loaded": 200, "unchanged": 200, "no_bundle": 404, "failed": 409, "redis_unavailable": 503}


@router.post(
    "/reload",
    response_model=ReloadResponse,
    responses={
        401: {"description": "no bearer token"},
        403: {"description": "wrong token, or admin disabled"},
        404: {"description": "no bundle published"},
        409: {"description": "the current version was refused (e.g. checksum); the old one keeps serving"},
        503: {"description": "Redis unreachable"},
    },
)
async def reload_bundle(state: RankerState = Depends(get_state)) -> OrjsonResponse:
    outcome = await run_in_threadpool(state.reloader.reload, True)
    body = {"status": outcome.status, "version": outcome.version, "detail": outcome.detail}
    return OrjsonResponse(body, status_code=_STATUS_CODES.get(outcome.status, 200))
