"""The micro-batcher's window: adaptive (a lone request never waits) and fixed, on a recording fake engine, for
both batchers (compute thread, event loop)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from semrec_ranker.engine.batcher import InlineBatcher, MicroBatcher
from semrec_ranker.engine.engine import Query

both = pytest.mark.parametrize("batcher_class", [MicroBatcher, InlineBatcher])


class RecordingEngine:
    """Answers each query with its own k as the only row, and records the batches it was given."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def run(self, queries):
        self.batches.append([q.k for q in queries])
        return [q.k for q in queries]


def _query(k: int) -> Query:
    return Query([1], np.empty(0, np.int64), k, [])


@both
def test_adaptive_window_never_delays_a_lone_request(batcher_class):
    engine = RecordingEngine()

    async def scenario() -> list[float]:
        batcher = batcher_class(window_s=1.0, adaptive=True)
        waits = []
        for k in range(1, 4):
            start = time.perf_counter()
            with batcher.coming() as ticket:
                assert await batcher.submit(engine, _query(k), ticket) == k
            waits.append(time.perf_counter() - start)
        await batcher.close()
        return waits

    waits = asyncio.run(scenario())
    assert max(waits) < 0.5, waits  # the 1 s window never opened
    assert engine.batches == [[1], [2], [3]]


@both
def test_adaptive_window_waits_for_a_request_on_its_way_and_no_longer(batcher_class):
    engine = RecordingEngine()

    async def scenario() -> tuple[float, float]:
        batcher = batcher_class(window_s=2.0, adaptive=True)

        async def slow_request(k: int, delay_s: float) -> int:
            with batcher.coming() as ticket:
                await asyncio.sleep(delay_s)  # e.g. reading the history from Redis
                return await batcher.submit(engine, _query(k), ticket)

        start = time.perf_counter()
        assert await asyncio.gather(slow_request(1, 0.0), slow_request(2, 0.2)) == [1, 2]
        together = time.perf_counter() - start

        async def leaves_without_submitting() -> None:
            with batcher.coming():
                await asyncio.sleep(0.2)  # e.g. answered 422 or from the popularity order

        start = time.perf_counter()
        await asyncio.gather(slow_request(3, 0.0), leaves_without_submitting())
        alone = time.perf_counter() - start
        await batcher.close()
        return together, alone

    together, alone = asyncio.run(scenario())
    assert engine.batches == [[1, 2], [3]]  # the first waited for the second, which was already coming
    assert 0.15 < together < 1.5 and 0.15 < alone < 1.5  # closed when nobody else was coming, not at 2 s


@both
def test_fixed_window_delays_a_lone_request_by_the_window(batcher_class):
    engine = RecordingEngine()

    async def scenario() -> float:
        batcher = batcher_class(window_s=0.3, adaptive=False)
        start = time.perf_counter()
        with batcher.coming() as ticket:
            await batcher.submit(engine, _query(1), ticket)
        waited = time.perf_counter() - start
        await batcher.close()
        return waited

    assert asyncio.run(scenario()) >= 0.27
    assert engine.batches == [[1]]


@both
def test_requests_arriving_during_a_batch_form_the_next_one(batcher_class):
    engine = RecordingEngine()

    class SlowEngine(RecordingEngine):
        def run(self, queries):
            time.sleep(0.2)
            return engine.run(queries)

    async def scenario() -> None:
        batcher = batcher_class(window_s=1.0, adaptive=True, max_batch=8)
        slow = SlowEngine()
        first = asyncio.ensure_future(batcher.submit(slow, _query(1)))
        await asyncio.sleep(0.05)  # the first batch is computing
        rest = [asyncio.ensure_future(batcher.submit(slow, _query(k))) for k in range(2, 6)]
        assert await asyncio.gather(first, *rest) == [1, 2, 3, 4, 5]
        await batcher.close()

    asyncio.run(scenario())
    assert engine.batches == [[1], [2, 3, 4, 5]]
