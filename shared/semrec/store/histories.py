"""User histories: `semrec:<catalog>:user:{<id>}` capped Redis lists (oldest first) with a TTL, written by
`/events` and seeded by `semrec publish --histories`. The key's hash tag is the user id, so on Redis Cluster
histories spread over all slots."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from semrec.store import keys


def append_history(client, catalog: str, user_id: str, item_ids: Sequence[str], cap: int, ttl_s: int = 0) -> int:
    """Append `item_ids`, trim to the newest `cap` and (ttl_s > 0) expire the key `ttl_s` after this write;
    returns the stored length. One MULTI/EXEC on the user's key (one slot on a cluster)."""
    key = keys.user_history(catalog, user_id)
    pipe = client.pipeline(transaction=True)
    pipe.rpush(key, *item_ids)
    pipe.ltrim(key, -cap, -1)
    if ttl_s > 0:
        pipe.expire(key, ttl_s)
    pipe.llen(key)
    return int(pipe.execute()[-1])


def history_length(client, catalog: str, user_id: str) -> int:
    return int(client.llen(keys.user_history(catalog, user_id)))


def read_history(client, catalog: str, user_id: str, cap: int) -> list[str]:
    """The newest `cap` item ids of the user (empty for an unknown user)."""
    raw = client.lrange(keys.user_history(catalog, user_id), -cap, -1)
    return [r.decode() if isinstance(r, bytes) else str(r) for r in raw]


def write_histories(client, catalog: str, histories: Iterable[tuple[str, Sequence[str]]], cap: int, ttl_s: int,
                    batch: int = 500, overwrite: bool = False) -> int:  # fmt: skip
    """Write each user's history (the newest `cap` of the given items), pipelined `batch` users per round
    trip, each key with a TTL (ttl_s > 0). Users who already have a history (live events) are left alone
    unless `overwrite`. Returns the number of users written."""
    written = 0
    pending: list[tuple[str, list[str]]] = []

    def flush() -> int:
        if not pending:
            return 0
        if overwrite:
            fresh = pending
        else:
            probe = client.pipeline(transaction=False)
            for key, _ in pending:
                probe.exists(key)
            fresh = [entry for entry, exists in zip(pending, probe.execute(), strict=True) if not exists]
        pipe = client.pipeline(transaction=False)
        for key, items in fresh:
            pipe.delete(key)
            pipe.rpush(key, *items)
            if ttl_s > 0:
                pipe.expire(key, ttl_s)
        pipe.execute()
        pending.clear()
        return len(fresh)

    for user_id, items in histories:
        items = [str(i) for i in list(items)[-cap:]]
        if items:
            pending.append((keys.user_history(catalog, str(user_id)), items))
        if len(pending) >= batch:
            written += flush()
    return written + flush()
