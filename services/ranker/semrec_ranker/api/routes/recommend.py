"""POST /recommend: next items for a history (given, or read from Redis by user id)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status
from redis.exceptions import RedisError
from semrec.store import read_history
from starlette.concurrency import run_in_threadpool

from semrec_ranker.api.deps import RankerState, get_engine, get_state
from semrec_ranker.api.models import RecommendRequest, RecommendResponse
from semrec_ranker.api.responses import OrjsonResponse
from semrec_ranker.api.routes.events import redis_unavailable
from semrec_ranker.engine import Engine

router = APIRouter(tags=["recommend"])


@router.post(
    "/recommend",
    response_model=RecommendResponse,
    responses={503: {"description": "no bundle loaded, or Redis unreachable for a user_id request"}},
)
async def recommend(
    body: RecommendRequest, engine: Engine = Depends(get_engine), state: RankerState = Depends(get_state)
) -> OrjsonResponse:
    """Runs on the event loop: the model work is a few milliseconds of CPU, and handing it to a thread
    costs two thread wake-ups per request, which dominate the tail on a busy machine. Only the Redis
    read (I/O) goes to the thread pool. Scale with uvicorn workers / replicas, not threads."""
    cap = state.settings.history_cap
    if body.history is not None:
        if len(body.history) > cap:
            raise HTTPException(422, f"history has {len(body.history)} items; at most {cap} (SEMREC_HISTORY_CAP)")
        history = body.history
    else:
        # fail fast while Redis is known to be down; else one try bounded by SEMREC_REDIS_REQUEST_TIMEOUT_S
        error = None
        if state.health.usable:
            try:
                history = await run_in_threadpool(read_history, state.redis, state.settings.catalog, body.user_id, cap)
            except RedisError as exc:
                error = exc
        if error is not None or not state.health.usable:
            failure = redis_unavailable(state, "/recommend", error)
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, f"user history unavailable: {failure.detail}; send `history` instead"
            ) from None
    result = engine.recommend(history, body.k, body.exclude_seen, body.exclude)
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
