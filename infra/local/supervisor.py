"""Keeps `stack up` running as Kubernetes keeps pods running: whatever part of the stack
exits (a service, Envoy, Redis, PostgreSQL) is started again, same address and data
directory, after a backoff that doubles while it keeps crashing (0.5 s up to 30 s) and
resets once it has stayed up for a minute. Only Ctrl-C (or SIGTERM) stops the stack.

A restarted part recovers as it would in production: a matching shard rebuilds its books
from its snapshot and journal, PostgreSQL runs its crash recovery, a Redis that lost its
data gets every book published afresh (order-update readers are told of the gap).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
STABLE_AFTER_S = 60.0


@dataclass
class Part:
    name: str
    alive: Callable[[], bool]
    start: Callable[[], None]
    backoff_s: float = FIRST_BACKOFF_S
    down_since: float | None = None
    started_at: float = 0.0
    restarts: int = 0


class Supervisor:
    def __init__(self, stack, say=print, clock=time.monotonic):
        self._say = say
        self._clock = clock
        now = clock()
        self.parts = [Part("postgres", stack.postgres_alive, stack.restart_postgres, started_at=now),
                      Part("redis", stack.redis_alive, stack.redis.start, started_at=now)]
        # Back to front: what a part needs is checked, and restarted, before it.
        self.parts += [Part(process.name, _running(process), _restart(stack, process.name), started_at=now)
                       for process in stack.processes]

    def check(self) -> None:
        """Restarts every part that is down and whose backoff has passed."""
        now = self._clock()
        for part in self.parts:
            if part.alive():
                if part.down_since is None and now - part.started_at >= STABLE_AFTER_S:
                    part.backoff_s = FIRST_BACKOFF_S
                continue
            if part.down_since is None:
                part.down_since = now
                self._say(f"stack: {part.name} is down; restarting in {part.backoff_s:.1f} s")
            if now - part.down_since < part.backoff_s:
                continue
            try:
                part.start()
            except Exception as error:  # noqa: BLE001 - it stays down: try again after a longer wait
                self._say(f"stack: {part.name} did not start: {error!r}")
                part.down_since = now
                part.backoff_s = min(MAX_BACKOFF_S, part.backoff_s * 2)
                continue
            part.restarts += 1
            part.down_since, part.started_at = None, now
            part.backoff_s = min(MAX_BACKOFF_S, part.backoff_s * 2)  # until it stays up
            self._say(f"stack: {part.name} restarted ({part.restarts} so far)")


def _running(process) -> Callable[[], bool]:
    return lambda: process.popen.poll() is None


def _restart(stack, name: str) -> Callable[[], None]:
    return lambda: stack.restart(name, wait=False)
