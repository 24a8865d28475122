"""Dynamic micro-batching (as Triton's dynamic batcher): concurrent requests share one encoder call and one
top-k pass.

`MicroBatcher` runs batches on one compute thread, so the event loop keeps reading requests meanwhile;
`InlineBatcher` (the ranker's default) runs them on the event loop, without thread hand-offs. Requests
that arrived while a batch was computing have already waited and form the next batch at once. When the batcher is idle,
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


def _settle(batch: list, results: list) -> None:
    """Each waiting request gets its result or its exception (one that gave up waiting is skipped)."""
    for (_, _, future), result in zip(batch, results, strict=True):
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


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
            if self.batcher.adaptive and self.batcher._coming <= 0:
                self.batcher._nobody_coming()


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

    def _nobody_coming(self) -> None:
        if self._go is not None:
            self._go.set()  # an open window need not wait longer

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
                _settle(batch, results)
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


class InlineBatcher(MicroBatcher):
    """The same batches and window rules, computed on the event loop instead of a compute thread.

    A submitted request schedules a flush with `call_soon`, so the handlers of requests that were read in
    the same event-loop iteration reach `submit` first and join the batch; the batch then runs right there.
    Requests that arrive while it computes are read afterwards and form the next batch. This saves the two
    thread hand-offs per batch (and the GIL hand-over between the loop and the compute thread) at the price
    of not reading requests while a batch computes: with as many workers as cores there is no idle core
    to overlap with anyway.
    """

    def __init__(self, window_s: float, max_batch: int = 32, on_batch: Callable[[int], None] = lambda size: None,
                 adaptive: bool = True) -> None:  # fmt: skip
        super().__init__(window_s, max_batch, on_batch, adaptive)
        self._executor.shutdown(wait=False)
        self._flush_handle: asyncio.Handle | None = None
        self._window: asyncio.TimerHandle | None = None

    async def submit(self, engine: Engine, query: Query, ticket: Ticket | None = None) -> Recommendation:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((engine, query, future))
        if ticket is not None:
            ticket.release()
        if len(self._pending) >= self.max_batch:
            self._schedule(loop, now=True)
        elif self._flush_handle is None and self._window is None:
            self._flush_handle = loop.call_soon(self._flush, False)
        return await future

    def _schedule(self, loop: asyncio.AbstractEventLoop, now: bool) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush_handle = loop.call_soon(self._flush, now)

    def _nobody_coming(self) -> None:
        if self._window is not None:
            self._schedule(asyncio.get_running_loop(), now=True)

    def _flush(self, now: bool) -> None:
        self._flush_handle = None
        if not self._pending:
            return
        if not now and self._window is None and self._wants_company():
            self._window = asyncio.get_running_loop().call_later(self.window_s, self._flush, True)
            return
        if self._window is not None:
            self._window.cancel()
            self._window = None
        while self._pending:
            batch = [p for p in self._pending[: self.max_batch] if not p[2].done()]
            del self._pending[: self.max_batch]
            if not batch:
                continue
            self.on_batch(len(batch))
            _settle(batch, _run_groups(batch))

    async def close(self) -> None:
        for handle in (self._flush_handle, self._window):
            if handle is not None:
                handle.cancel()
        for _, _, future in self._pending:
            if not future.done():
                future.cancel()
        self._pending.clear()
