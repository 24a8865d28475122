"""GET /items/{item_id}/similar: item-to-item neighbours by the item table."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from semrec_ranker.api.deps import get_engine
from semrec_ranker.api.models import MAX_K, SimilarResponse
from semrec_ranker.api.responses import OrjsonResponse
from semrec_ranker.engine import Engine

router = APIRouter(tags=["items"])


@router.get(
    "/items/{item_id}/similar",
    response_model=SimilarResponse,
    responses={404: {"description": "unknown item"}, 503: {"description": "no bundle loaded"}},
)
async def similar_items(
    item_id: str = Path(min_length=1, max_length=256),
    k: int = Query(10, ge=1, le=MAX_K),
    engine: Engine = Depends(get_engine),
) -> OrjsonResponse:
    found = engine.similar(item_id, k)
    if found is None:
        raise HTTPException(404, f"item {item_id!r} is not in catalogue version {engine.version}")
    rows, scores = found
    ids = engine.item_ids
    items = [{"item_id": ids[r], "score": s} for r, s in zip(rows.tolist(), scores.tolist(), strict=True)]
    return OrjsonResponse({"item_id": item_id, "items": items, "version": engine.version})
