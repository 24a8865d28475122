"""Dependencies shared by the routes: the app state, the served engine, the admin check."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from semrec_ranker.core.config import RankerSettings
from semrec_ranker.core.metrics import Metrics
from semrec_ranker.core.redis_calls import RedisCalls
from semrec_ranker.core.redis_health import RedisHealth
from semrec_ranker.engine import BundleHolder, Engine, Reloader
from semrec_ranker.engine.batcher import MicroBatcher


@dataclass
class RankerState:
    settings: RankerSettings
    metrics: Metrics
    holder: BundleHolder
    redis: RedisCalls  # request path: short timeout, no retries, its own thread pool
    reloader: Reloader
    health: RedisHealth
    batcher: MicroBatcher | None = None  # None: micro-batching off (an InlineBatcher is a MicroBatcher)


async def get_state(request: Request) -> RankerState:
    return request.app.state.ranker


async def get_engine(state: RankerState = Depends(get_state)) -> Engine:
    engine = state.holder.engine  # one read: the request keeps this engine even if a reload swaps it
    if engine is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no bundle loaded yet (see GET /readyz)")
    return engine


_bearer = HTTPBearer(auto_error=False)


def _check_bearer(credentials: HTTPAuthorizationCredentials | None, token: str) -> None:
    if credentials is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "bearer token required",
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    given = credentials.credentials.encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(given, token.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid token")


async def require_admin(
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    state: RankerState = Depends(get_state),
) -> None:
    token = state.settings.admin_token_value()
    if credentials is None:
        _check_bearer(credentials, "")
    if token is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "admin endpoints are disabled (SEMREC_ADMIN_TOKEN unset)")
    _check_bearer(credentials, token)


async def require_events_token(
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    state: RankerState = Depends(get_state),
) -> None:
    token = state.settings.events_token_value()
    if token is not None:
        _check_bearer(credentials, token)
