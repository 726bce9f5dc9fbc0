"""Open-loop scheduling: calls start at planned times, whatever earlier calls are doing.

A closed-loop client waits for each answer before sending the next call, so a slow
server slows the client down and the calls that would have waited are never measured
("coordinated omission"). Here the arrival times are fixed in advance (evenly spaced,
or Poisson: exponential gaps), every call starts at its time even if earlier ones are
still in flight, and its latency is counted from the *planned* time, so any queueing,
in the server or in this process, shows in the percentiles.

In-flight calls are capped (memory, sockets): a call due while the cap is reached is not
started and is counted as dropped, so the report shows the load that was not offered.
No gRPC here: `run` drives any `async start(index, due)` callable.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterator

ARRIVALS = ("fixed", "poisson")


def arrival_offsets(rate: float, duration: float, arrivals: str = "fixed",
                    rng: random.Random | None = None) -> Iterator[float]:
    """Planned start times, in seconds from the start, of the calls in [0, duration)."""
    if rate <= 0 or duration <= 0:
        return
    if arrivals == "fixed":
        # k / rate, not a running sum, so float error does not add up over a long run.
        k = 0
        while (offset := k / rate) < duration:
            yield offset
            k += 1
    elif arrivals == "poisson":
        rng = rng or random.Random()
        offset = rng.expovariate(rate)
        while offset < duration:
            yield offset
            offset += rng.expovariate(rate)
    else:
        raise ValueError(f"arrivals must be one of {ARRIVALS}, not {arrivals!r}")


@dataclass
class Stats:
    scheduled: int = 0  # planned times reached
    started: int = 0
    dropped: int = 0  # due while max_in_flight calls were running: never started
    in_flight: int = 0
    peak_in_flight: int = 0
    # How late a call started after its planned time (this process's own lag), seconds.
    max_lag: float = 0.0

    def admit(self, max_in_flight: int, lag: Callable[[], float]) -> float | None:
        """Counts a call whose planned time came: its start lag if it may start (it is then
        in flight), None if it is dropped (max_in_flight calls are running). `lag` is
        asked only of a call that starts."""
        self.scheduled += 1
        if self.in_flight >= max_in_flight:
            self.dropped += 1
            return None
        late = lag()
        self.max_lag = max(self.max_lag, late)
        self.in_flight += 1
        self.started += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return late


async def run(offsets: Iterator[float], start: Callable[[int, float], Awaitable[None]], *, max_in_flight: int,
              clock: Callable[[], float] = time.perf_counter,
              sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
              origin: float | None = None, on_lag: Callable[[float], None] | None = None,
              stats: Stats | None = None) -> Stats:
    """Starts `start(index, due)` at origin + each offset (index counts every planned call,
    dropped ones included; `due` is the planned clock() value to measure latency from),
    then waits for the calls still in flight. An exception raised by a call is re-raised
    here once the others have finished: it is a bug, not a failed RPC. Pass `stats` to
    watch the counters while it runs."""
    if max_in_flight < 1:
        raise ValueError("max_in_flight must be >= 1")
    stats = Stats() if stats is None else stats
    origin = clock() if origin is None else origin
    tasks: set[asyncio.Task] = set()
    failures: list[BaseException] = []

    async def one(index: int, due: float) -> None:
        try:
            await start(index, due)
        except Exception as error:  # noqa: BLE001 - kept and re-raised after the drain
            failures.append(error)
        finally:
            stats.in_flight -= 1

    for index, offset in enumerate(offsets):
        due = origin + offset
        # Always yield, even when late: overdue calls then go out as a burst without
        # starving the event loop of the answers that are arriving meanwhile.
        await sleep(max(0.0, due - clock()))
        lag = stats.admit(max_in_flight, lambda: max(0.0, clock() - due))
        if lag is None:
            continue
        if on_lag is not None:
            on_lag(lag)
        task = asyncio.ensure_future(one(index, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    if failures:
        raise failures[0]
    return stats
