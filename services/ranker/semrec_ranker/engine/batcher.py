"""Dynamic micro-batching (as Triton's dynamic batcher): requests that arrive within a short window share
one encoder call.

The first request of a quiet period opens a window of `window_s`; every request that arrives before it
closes (or until `max_batch` are waiting) joins the batch, which then runs on one compute thread, so the
event loop keeps reading requests meanwhile. Requests that arrived while a batch was computing have already
waited: they form the next batch at once, without a new window. A lone request therefore waits at most the
window (plus the event loop's timer resolution).

Each query is answered exactly as `Engine.run` answers it alone (the top-k is per query; the encoder is
row-wise), so batching changes latency and throughput, never results.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from semrec_ranker.engine.engine import Engine, Query, Recommendation

log = logging.getLogger("semrec.ranker")

Pending = tuple[Engine, Query, asyncio.Future]


def _run_groups(batch: list[Pending]) -> list[Recommendation | BaseException]:
    """Run the batch, one `Engine.run` per engine (a hot reload may swap engines between two requests)."""
    out: list[Recommendation | BaseException | None] = [None] * len(batch)
    groups: dict[int, list[int]] = {}
    for i, (engine, _, _) in enumerate(batch):
        groups.setdefault(id(engine), []).append(i)
    for members in groups.values():
        engine = batch[members[0]][0]
        try:
            results: list = engine.run([batch[i][1] for i in members])
        except Exception as exc:  # noqa: BLE001 - handed to each waiting request
            results = [exc] * len(members)
        for i, result in zip(members, results, strict=True):
            out[i] = result
    return out  # type: ignore[return-value]


class MicroBatcher:
    def __init__(self, window_s: float, max_batch: int = 32,
                 on_batch: Callable[[int], None] = lambda size: None) -> None:  # fmt: skip
        if window_s <= 0:
            raise ValueError("window_s must be > 0 (0 means no batching: do not build a batcher)")
        self.window_s = window_s
        self.max_batch = max_batch
        self.on_batch = on_batch
        self._pending: list[Pending] = []
        self._arrived: asyncio.Event | None = None
        self._full: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="semrec-batch")

    async def submit(self, engine: Engine, query: Query) -> Recommendation:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._arrived, self._full = asyncio.Event(), asyncio.Event()
            self._task = loop.create_task(self._serve())
        future = loop.create_future()
        self._pending.append((engine, query, future))
        self._arrived.set()  # type: ignore[union-attr]
        if len(self._pending) >= self.max_batch:
            self._full.set()  # type: ignore[union-attr]
        return await future

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        arrived, full = self._arrived, self._full
        assert arrived is not None and full is not None
        backlog = False
        while True:
            if not self._pending:
                arrived.clear()
                await arrived.wait()
            if not backlog and len(self._pending) < self.max_batch:
                full.clear()
                try:  # the window: wait for company, at most window_s
                    await asyncio.wait_for(full.wait(), self.window_s)
                except TimeoutError:
                    pass
            batch = [p for p in self._pending[: self.max_batch] if not p[2].done()]  # drop cancelled ones
            del self._pending[: self.max_batch]
            if batch:
                self.on_batch(len(batch))
                try:
                    results = await loop.run_in_executor(self._executor, _run_groups, batch)
                except Exception as exc:  # noqa: BLE001 - the executor itself failed
                    results = [exc] * len(batch)
                for (_, _, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
            backlog = bool(self._pending)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        for _, _, future in self._pending:
            if not future.done():
                future.cancel()
        self._pending.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
