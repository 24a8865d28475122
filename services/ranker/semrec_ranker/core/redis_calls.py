"""The request path's Redis calls (user_id history reads, /events writes), off the event loop.

They run on a thread pool of their own, sized to the client's connection pool (`SEMREC_REDIS_POOL_SIZE`):
a call never waits for a connection, never queues behind other blocking work, and its socket timeout
(`SEMREC_REDIS_REQUEST_TIMEOUT_S`) measures Redis alone. An asyncio client would save the two thread
hand-offs, but its timeout runs on the event loop: under load a reply that is merely waiting for the loop
would count as a hung Redis and, through the fail-fast status, turn every other request into a 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class RedisCalls:
    def __init__(self, client, threads: int) -> None:
        self.client = client  # short socket timeout, no retries, max_connections == threads
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="semrec-redis")

    async def __call__(self, function: Callable[..., T], *args: Any) -> T:
        """`function(client, *args)` on the pool."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, self.client, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.client.close()
