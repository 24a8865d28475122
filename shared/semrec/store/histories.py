"""User histories: `semrec:{catalog}:user:{id}` capped Redis lists (oldest first), written by `/events`."""

from __future__ import annotations

from collections.abc import Sequence

from semrec.store import keys


def append_history(client, catalog: str, user_id: str, item_ids: Sequence[str], cap: int) -> int:
    """Append `item_ids` and trim to the newest `cap`; returns the stored length (atomic MULTI/EXEC)."""
    key = keys.user_history(catalog, user_id)
    pipe = client.pipeline(transaction=True)
    pipe.rpush(key, *item_ids)
    pipe.ltrim(key, -cap, -1)
    pipe.llen(key)
    return int(pipe.execute()[-1])


def read_history(client, catalog: str, user_id: str, cap: int) -> list[str]:
    """The newest `cap` item ids of the user (empty for an unknown user)."""
    raw = client.lrange(keys.user_history(catalog, user_id), -cap, -1)
    return [r.decode() if isinstance(r, bytes) else str(r) for r in raw]
