"""Request and response bodies (pydantic); FastAPI turns them into the OpenAPI spec at /docs."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

MAX_K = 200
MAX_LIST = 10_000  # schema bound; the configured history cap is checked in the handler


def _int_to_str(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _utf8(value: str) -> str:
    """JSON may escape lone surrogates (\\ud800), which no UTF-8 store or response can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("id is not valid Unicode text (it holds a lone surrogate)") from None
    return value


_Id = Annotated[str, BeforeValidator(_int_to_str), StringConstraints(min_length=1, max_length=256), AfterValidator(_utf8)]
ItemId = _Id
UserId = _Id


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendRequest(Body):
    user_id: UserId | None = Field(None, description="read the history from Redis (written by POST /events)")
    history: list[ItemId] | None = Field(None, max_length=MAX_LIST, description="item ids, oldest first")
    k: int = Field(10, ge=1, le=MAX_K, description="how many items")
    exclude_seen: bool = Field(True, description="never recommend items of the history")
    exclude: list[ItemId] = Field(default_factory=list, max_length=MAX_LIST, description="item ids to leave out")

    @model_validator(mode="after")
    def _one_source(self) -> RecommendRequest:
        if (self.user_id is None) == (self.history is None):
            raise ValueError("give exactly one of user_id or history")
        return self


class ScoredItem(BaseModel):
    item_id: str
    score: float


class RecommendResponse(BaseModel):
    items: list[ScoredItem]
    version: str = Field(description="bundle version that produced the answer")
    fallback: bool = Field(description="true: empty or all-unknown history, so the most popular items")
    unknown_items: list[str] = Field(description="history ids not in the catalogue (dropped)")
    history_used: int = Field(description="history items fed to the encoder")


class EventsRequest(Body):
    user_id: UserId
    items: list[ItemId] = Field(min_length=1, max_length=MAX_LIST, description="interacted item ids, oldest first")


class EventsResponse(BaseModel):
    user_id: str
    stored: int
    history_length: int
    unknown_items: list[str]


class SimilarResponse(BaseModel):
    item_id: str
    items: list[ScoredItem]
    version: str


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="ready, degraded (Redis unreachable) or not_ready (no bundle)")
    bundle: dict[str, Any] | None
    redis: str = Field(description="ok, unreachable or unknown (not checked yet), from the background check")
    catalog: str
    notice: str | None = Field(None, description="set while a fallback version is served instead of the pointer's")


class ReloadResponse(BaseModel):
    status: str
    version: str | None
    detail: str = ""
