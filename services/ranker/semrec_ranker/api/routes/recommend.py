"""POST /recommend: next items for a history (given, or read from Redis by user id)."""

from __future__ import annotations

from contextlib import nullcontext

from fastapi import APIRouter, Depends, HTTPException, status
from redis.exceptions import RedisError
from semrec.store import read_history

from semrec_ranker.api.deps import RankerState, get_engine, get_state
from semrec_ranker.api.models import RecommendRequest, RecommendResponse
from semrec_ranker.api.responses import OrjsonResponse
from semrec_ranker.api.routes.events import redis_unavailable
from semrec_ranker.engine import Engine

router = APIRouter(tags=["recommend"])


async def _user_history(state: RankerState, user_id: str, cap: int) -> list[str]:
    """The user's history from Redis, on the Redis thread pool (the event loop keeps serving); fails fast (503)
    while Redis is known to be down, else one try bounded by SEMREC_REDIS_REQUEST_TIMEOUT_S."""
    error = None
    if state.health.usable:
        try:
            return await state.redis(read_history, state.settings.catalog, user_id, cap)
        except RedisError as exc:
            error = exc
    failure = redis_unavailable(state, "/recommend", error)
    raise HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE, f"user history unavailable: {failure.detail}; send `history` instead"
    ) from None


@router.post(
    "/recommend",
    response_model=RecommendResponse,
    responses={503: {"description": "no bundle loaded, or Redis unreachable for a user_id request"}},
)
async def recommend(
    body: RecommendRequest, engine: Engine = Depends(get_engine), state: RankerState = Depends(get_state)
) -> OrjsonResponse:
    """With micro-batching on (SEMREC_BATCH_WINDOW_MS > 0) the model work of concurrent requests runs as one
    batch on the batcher's compute thread (the request is announced to the batcher from here on, so that
    an adaptive window waits for it); off, it runs on the event loop (a few milliseconds of CPU: handing
    each request to a thread would cost two thread wake-ups, which dominate the tail on a busy machine).
    Scale with uvicorn workers / replicas, not threads."""
    batcher = state.batcher
    with batcher.coming() if batcher is not None else nullcontext() as ticket:
        cap = state.settings.history_cap
        if body.history is not None:
            if len(body.history) > cap:
                raise HTTPException(422, f"history has {len(body.history)} items; at most {cap} (SEMREC_HISTORY_CAP)")
            history = body.history
        else:
            history = await _user_history(state, body.user_id, cap)
        query = engine.prepare(history, body.k, body.exclude_seen, body.exclude)
        if batcher is not None and query.rows:
            result = await batcher.submit(engine, query, ticket)
        else:
            result = engine.run([query])[0]
    if result.fallback:
        state.metrics.fallbacks.inc()
    else:
        state.metrics.model_seconds.labels("encode").observe(result.encode_s)
    state.metrics.model_seconds.labels("topk").observe(result.topk_s)
    ids = engine.item_ids
    items = [{"item_id": ids[r], "score": s} for r, s in zip(result.rows.tolist(), result.scores.tolist(), strict=True)]
    return OrjsonResponse(
        {
            "items": items,
            "version": engine.version,
            "fallback": result.fallback,
            "unknown_items": result.unknown_items,
            "history_used": result.used_history,
        }
    )
