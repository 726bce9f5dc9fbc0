"""Open-loop scheduling: planned times (fixed and Poisson), starts on time whatever is in
flight, latency from the planned time (queueing included), dropped accounting."""

from __future__ import annotations

import asyncio
import random
import statistics
import time

import pytest

from loadgen import openloop

pytestmark = pytest.mark.timeout(30)


def test_fixed_arrivals_are_evenly_spaced():
    assert list(openloop.arrival_offsets(10, 1.0)) == pytest.approx([k / 10 for k in range(10)])
    assert list(openloop.arrival_offsets(3, 1.0)) == pytest.approx([0, 1 / 3, 2 / 3])
    assert len(list(openloop.arrival_offsets(300, 15))) == 4500
    assert len(list(openloop.arrival_offsets(0.5, 3))) == 2  # 0 and 2 s
    assert list(openloop.arrival_offsets(0, 10)) == []


def test_poisson_arrivals():
    offsets = list(openloop.arrival_offsets(1000, 10, "poisson", random.Random(3)))
    # 10,000 expected, standard deviation 100.
    assert 9600 < len(offsets) < 10400
    assert all(0 <= a < b < 10 for a, b in zip(offsets, offsets[1:]))
    gaps = [b - a for a, b in zip(offsets, offsets[1:])]
    mean = statistics.fmean(gaps)
    assert mean == pytest.approx(1 / 1000, rel=0.05)
    # Exponential gaps: the standard deviation equals the mean (fixed gaps would give 0).
    assert statistics.pstdev(gaps) == pytest.approx(mean, rel=0.1)
    again = list(openloop.arrival_offsets(1000, 10, "poisson", random.Random(3)))
    assert again == offsets
    with pytest.raises(ValueError):
        list(openloop.arrival_offsets(10, 1, "bursty"))


class FakeClock:
    """Virtual time: sleeping moves the clock (and lets the other tasks run)."""

    def __init__(self, now: float = 100.0):
        self.now = now
        self.hooks: list = []  # (time, callback) fired when the clock passes time

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)  # like asyncio.sleep: the tasks just started run now, before time moves
        self.now += seconds
        for at, callback in list(self.hooks):
            if self.now >= at:
                self.hooks.remove((at, callback))
                callback()
        for _ in range(3):
            await asyncio.sleep(0)


def test_calls_start_at_their_planned_times():
    clock = FakeClock()
    started = []

    async def start(index, due):
        started.append((index, due, clock()))

    stats = asyncio.run(openloop.run(openloop.arrival_offsets(20, 2.0), start, max_in_flight=5,
                                     clock=clock, sleep=clock.sleep, origin=100.0))
    assert (stats.scheduled, stats.started, stats.dropped) == (40, 40, 0)
    assert [i for i, _, _ in started] == list(range(40))
    assert [due for _, due, _ in started] == pytest.approx([100 + k / 20 for k in range(40)])
    assert all(now == pytest.approx(due) for _, due, now in started)
    assert stats.max_lag == pytest.approx(0, abs=1e-9)


def test_poisson_schedule_with_injected_clock():
    clock = FakeClock(0.0)
    starts = []

    async def start(index, due):
        starts.append(clock())

    offsets = list(openloop.arrival_offsets(50, 4.0, "poisson", random.Random(9)))
    stats = asyncio.run(openloop.run(iter(offsets), start, max_in_flight=10, clock=clock, sleep=clock.sleep,
                                     origin=0.0))
    assert stats.started == len(offsets) and 150 < len(offsets) < 250
    assert starts == pytest.approx(offsets)


def test_late_calls_go_out_at_once_and_keep_their_planned_time():
    """A stall in this process (a sleep that overshoots by 0.35 s) delays four calls
    (planned at .3 .4 .5 .6);
    they leave as soon as it ends, and `due` still holds their planned time, so the delay
    counts in their latency instead of disappearing."""
    clock = FakeClock(0.0)
    real_sleep = clock.sleep
    stalled = []

    async def stalling_sleep(seconds):
        if not stalled and clock.now >= 0.2:
            stalled.append(1)
            seconds += 0.35
        await real_sleep(seconds)

    records, lags = [], []

    async def start(index, due):
        records.append((due, clock()))

    stats = asyncio.run(openloop.run(openloop.arrival_offsets(10, 1.0), start, max_in_flight=100, clock=clock,
                                     sleep=stalling_sleep, origin=0.0, on_lag=lags.append))
    assert stats.started == 10
    late = [(due, now) for due, now in records if now - due > 1e-6]
    assert [due for due, _ in late] == pytest.approx([0.3, 0.4, 0.5, 0.6])
    assert all(now == pytest.approx(0.65) for _, now in late)
    assert stats.max_lag == pytest.approx(0.35)
    assert sorted(lags)[-4:] == pytest.approx([0.05, 0.15, 0.25, 0.35])


def test_calls_beyond_max_in_flight_are_dropped_and_counted():
    """Cap 3; calls hang until t=0.55: calls at 0, .1, .2 start, .3 .4 .5 are dropped,
    then the hung ones finish and .6 .7 .8 .9 start."""
    clock = FakeClock(0.0)
    release = asyncio.Event()
    clock.hooks.append((0.55, release.set))
    started = []

    async def start(index, due):
        started.append(index)
        await release.wait()

    async def main():
        return await openloop.run(openloop.arrival_offsets(10, 1.0), start, max_in_flight=3, clock=clock,
                                  sleep=clock.sleep, origin=0.0)

    stats = asyncio.run(main())
    assert started == [0, 1, 2, 6, 7, 8, 9]
    assert (stats.scheduled, stats.started, stats.dropped, stats.peak_in_flight) == (10, 7, 3, 3)
    assert stats.in_flight == 0
    with pytest.raises(ValueError):
        asyncio.run(openloop.run(iter([0.0]), start, max_in_flight=0))


def test_real_time_calls_overlap_and_latency_includes_queueing():
    """100 calls/s for 0.5 s against a fake server that serves one call at a time in 20 ms:
    it can do 50/s, so a queue builds up. Calls still start on schedule (many in flight at
    once), and latency from the planned start grows with the queue (about 0.5 s at the
    end), while the service time alone is 20 ms."""
    server = None
    latencies, service = [], []

    async def start(index, due):
        async with server:
            began = time.perf_counter()
            await asyncio.sleep(0.02)
            service.append(time.perf_counter() - began)
        latencies.append(time.perf_counter() - due)

    async def main():
        nonlocal server
        server = asyncio.Semaphore(1)
        t0 = time.perf_counter()
        stats = await openloop.run(openloop.arrival_offsets(100, 0.5), start, max_in_flight=1000)
        return stats, time.perf_counter() - t0

    stats, wall = asyncio.run(main())
    assert (stats.scheduled, stats.started, stats.dropped) == (50, 50, 0)
    assert stats.peak_in_flight >= 10  # overlapping calls: nobody waited for an answer
    assert stats.max_lag < 0.2  # started on time despite the queue
    assert wall >= 50 * 0.02
    assert max(service) < 0.2
    assert max(latencies) >= 0.4  # the queueing delay is in the latency
    assert statistics.fmean(latencies) > 5 * statistics.fmean(service)


def test_a_bug_in_a_call_is_raised_after_the_others_finish():
    done = []

    async def start(index, due):
        if index == 1:
            raise RuntimeError("boom")
        await asyncio.sleep(0.01)
        done.append(index)

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(openloop.run(openloop.arrival_offsets(100, 0.05), start, max_in_flight=10))
    assert done == [0, 2, 3, 4]
