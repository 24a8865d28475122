"""POST /events: append interactions to a user's capped, expiring history in Redis (known item ids only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status
from redis.exceptions import RedisError
from semrec.store import append_history, history_length

from semrec_ranker.api.deps import RankerState, get_state, require_events_token
from semrec_ranker.api.models import EventsRequest, EventsResponse
from semrec_ranker.api.responses import OrjsonResponse

router = APIRouter(tags=["events"])


def redis_unavailable(state: RankerState, endpoint: str, error: Exception | None = None) -> HTTPException:
    if error is not None:
        state.health.mark_failed(error)
    state.metrics.errors.labels(endpoint, "redis").inc()
    reason = type(error).__name__ if error is not None else state.health.status.error or "last check failed"
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"Redis unreachable ({reason})")


@router.post(
    "/events",
    response_model=EventsResponse,
    dependencies=[Depends(require_events_token)],
    responses={
        401: {"description": "SEMREC_EVENTS_TOKEN is set and no bearer token was sent"},
        403: {"description": "wrong token"},
        503: {"description": "Redis unreachable, or no catalogue loaded to check item ids against"},
    },
)
async def post_events(body: EventsRequest, state: RankerState = Depends(get_state)) -> OrjsonResponse:
    """Item ids not in the served catalogue are dropped (and counted in
    `semrec_events_unknown_items_total`): a history only ever holds ids the model knows."""
    cap = state.settings.history_cap
    if len(body.items) > cap:
        raise HTTPException(422, f"{len(body.items)} items in one call; at most {cap} (SEMREC_HISTORY_CAP)")
    engine = state.holder.engine
    if engine is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no catalogue loaded yet to check item ids against")
    row_of = engine.row_of
    known = [item for item in body.items if item in row_of]
    unknown = [item for item in body.items if item not in row_of]
    if unknown:
        state.metrics.events_unknown_items.inc(len(unknown))
    if not state.health.usable:
        raise redis_unavailable(state, "/events")
    catalog = state.settings.catalog
    try:  # one round trip (a MULTI/EXEC pipeline) on the Redis thread pool
        if known:
            length = await state.redis(append_history, catalog, body.user_id, known, cap, state.settings.history_ttl_s)
        else:
            length = await state.redis(history_length, catalog, body.user_id)
    except RedisError as exc:
        raise redis_unavailable(state, "/events", exc) from None
    return OrjsonResponse(
        {"user_id": body.user_id, "stored": len(known), "history_length": length, "unknown_items": unknown}
    )
