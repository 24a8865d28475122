"""Dynamic micro-batching (as Triton's dynamic batcher): concurrent requests share one encoder call and one
top-k pass.

Batches run on one compute thread, so the event loop keeps reading requests meanwhile; requests that arrived
while a batch was computing have already waited and form the next batch at once. When the batcher is idle,
a request either runs at once or opens a window of `window_s` for company:

- adaptive (the default): the window opens only when another request is on its way, i.e. inside the
  request handler but not submitted yet (reading its history from Redis, being validated). A lone request
  is never delayed; under load, batches form from the backlog and from requests known to be coming.
- fixed: the first request of a quiet period always opens the window (a lone request waits the window).

Either way the window closes early once `max_batch` requests wait (or, adaptive, once every request known
to be coming has submitted). Each query is answered exactly as `Engine.run` answers it alone (the top-k
is per query; the encoder is row-wise), so batching changes latency and throughput, never results.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

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


class Ticket:
    """A request on its way to the batcher (see `MicroBatcher.coming`)."""

    def __init__(self, batcher: MicroBatcher) -> None:
        self.batcher = batcher
        self.open = True
        batcher._coming += 1

    def release(self) -> None:
        if self.open:
            self.open = False
            self.batcher._coming -= 1
            if self.batcher.adaptive and self.batcher._coming <= 0 and self.batcher._go is not None:
                self.batcher._go.set()  # nobody else is coming: an open window need not wait longer


class MicroBatcher:
    def __init__(self, window_s: float, max_batch: int = 32, on_batch: Callable[[int], None] = lambda size: None,
                 adaptive: bool = True) -> None:  # fmt: skip
        if window_s <= 0:
            raise ValueError("window_s must be > 0 (0 means no batching: do not build a batcher)")
        self.window_s = window_s
        self.max_batch = max_batch
        self.on_batch = on_batch
        self.adaptive = adaptive
        self._pending: list[Pending] = []
        self._coming = 0  # requests inside a handler that may still submit
        self._arrived: asyncio.Event | None = None
        self._go: asyncio.Event | None = None  # ends an open window early
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="semrec-batch")

    @contextmanager
    def coming(self) -> Iterator[Ticket]:
        """Announce a request from the start of its handler until it submits (or leaves without submitting),
        so that an adaptive window opens for it."""
        ticket = Ticket(self)
        try:
            yield ticket
        finally:
            ticket.release()

    async def submit(self, engine: Engine, query: Query, ticket: Ticket | None = None) -> Recommendation:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._arrived, self._go = asyncio.Event(), asyncio.Event()
            self._task = loop.create_task(self._serve())
        future = loop.create_future()
        self._pending.append((engine, query, future))
        if ticket is not None:
            ticket.release()
        self._arrived.set()  # type: ignore[union-attr]
        if len(self._pending) >= self.max_batch:
            self._go.set()  # type: ignore[union-attr]
        return await future

    def _wants_company(self) -> bool:
        return len(self._pending) < self.max_batch and (not self.adaptive or self._coming > 0)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        arrived, go = self._arrived, self._go
        assert arrived is not None and go is not None
        backlog = False
        while True:
            if not self._pending:
                arrived.clear()
                await arrived.wait()
            if not backlog and self._wants_company():
                go.clear()
                try:  # the window: wait for company, at most window_s
                    await asyncio.wait_for(go.wait(), self.window_s)
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
