"""POST /events: append interactions to a user's capped history in Redis."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status
from redis.exceptions import RedisError
from semrec.store import append_history

from semrec_ranker.api.deps import RankerState, get_state
from semrec_ranker.api.models import EventsRequest, EventsResponse
from semrec_ranker.api.responses import OrjsonResponse

router = APIRouter(tags=["events"])


@router.post("/events", response_model=EventsResponse, responses={503: {"description": "Redis unreachable"}})
def post_events(body: EventsRequest, state: RankerState = Depends(get_state)) -> OrjsonResponse:
    cap = state.settings.history_cap
    if len(body.items) > cap:
        raise HTTPException(422, f"{len(body.items)} items in one call; at most {cap} (SEMREC_HISTORY_CAP)")
    engine = state.holder.engine
    unknown = engine.map_items(body.items)[1] if engine is not None else []
    try:
        length = append_history(state.redis, state.settings.catalog, body.user_id, body.items, cap)
    except RedisError as exc:
        state.metrics.errors.labels("/events", "redis").inc()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"Redis unreachable ({type(exc).__name__})") from None
    return OrjsonResponse(
        {"user_id": body.user_id, "stored": len(body.items), "history_length": length, "unknown_items": unknown}
    )
