"""A shard snapshot encoded by a forked child, so that its cost does not stop the shard.

A snapshot's copy (the engine's books, the working orders' rows, the key window) grows
with the state: at 330 MB it held its shard's batches for seconds, and its encoding
then competed with every shard of the process for the GIL. A forked child sees the
process's memory as it was at the fork (copy-on-write), so the parent pays only for the
fork itself (copying its page tables, milliseconds) and the pages it writes while the
child lives; the child copies and encodes the state at leisure, on the other core, and
writes the bytes to an anonymous memory file that the parent reads once it has exited.

The child runs only the snapshot's own code (the engine, numpy, protobuf): never the
event loop, gRPC or logging, whose threads do not exist in it. It leaves with
`os._exit`, so no handler of the parent's runs there; it dies with its parent.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import struct
import time
import traceback
import weakref
from collections.abc import Callable, Sequence

POLL_S = 0.005
# The child's priority below the process's: it is background work, and on a busy machine
# the orders' path comes first (at nice 10 it still gets about a tenth of a core).
CHILD_NICE = 10
_PR_SET_PDEATHSIG = 1
# Found here, not in the child: a lookup there could wait on a lock another thread held.
# Linux only (elsewhere the child cannot follow its parent's death).
_prctl = getattr(ctypes.CDLL(None), "prctl", None)


class SnapshotFailed(RuntimeError):
    """The child did not produce the snapshot (it failed, was killed, or took too long)."""


def available() -> bool:
    return hasattr(os, "fork") and hasattr(os, "memfd_create") and hasattr(os, "wait4")


_turns: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def turn() -> asyncio.Lock:
    """Held from before a fork until the child exits: one child at a time per process
    (per event loop). Two shards' children at once took more than the machine's second
    core, and every shard's commands slowed while they ran."""
    loop = asyncio.get_running_loop()
    lock = _turns.get(loop)
    if lock is None:
        lock = _turns[loop] = asyncio.Lock()
    return lock


class ForkedSnapshot:
    """A child forked now to compute encode(); `await result()` gives the byte strings
    it returned. The caller holds whatever keeps the state still for the instant of the
    construction only: the child's copy is taken by then."""

    def __init__(self, encode: Callable[[], Sequence[bytes]]):
        self.cpu_s = 0.0  # the child's, once it exited
        self._fd = os.memfd_create("bourse-snapshot", os.MFD_CLOEXEC)
        parent = os.getpid()
        started = time.perf_counter()
        try:
            self._pid = os.fork()
        except BaseException:
            os.close(self._fd)
            raise
        if self._pid == 0:
            _child(self._fd, encode, parent)
        self.fork_s = time.perf_counter() - started  # this process's pause

    async def result(self, timeout_s: float = 600.0) -> list[bytes]:
        try:
            status = await self._reap(timeout_s)
            if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
                raise SnapshotFailed(f"the snapshot's child ended with wait status {status:#x}")
            size = os.fstat(self._fd).st_size
            return await asyncio.to_thread(_read_all, self._fd, size)
        finally:
            os.close(self._fd)

    async def _reap(self, timeout_s: float) -> int:
        """The child's wait status once it exits; kills it on timeout or cancellation (a
        child left running would hold its copy of the whole process)."""
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                done, status, usage = os.wait4(self._pid, os.WNOHANG)  # noqa: ASYNC222 - WNOHANG: never waits
                if done:
                    self.cpu_s = usage.ru_utime + usage.ru_stime
                    return status
                if time.monotonic() > deadline:
                    raise SnapshotFailed(f"the snapshot's child still ran after {timeout_s:.0f} s")
                await asyncio.sleep(POLL_S)
        except BaseException:
            os.kill(self._pid, signal.SIGKILL)
            os.waitpid(self._pid, 0)  # noqa: ASYNC222 - a SIGKILLed child: at once
            raise


def _read_all(fd: int, size: int) -> list[bytes]:
    """The parts as `_child` wrote them: their count and sizes (u64 each), then each."""
    (count,) = struct.unpack("<Q", os.pread(fd, 8, 0))
    sizes = struct.unpack(f"<{count}Q", os.pread(fd, 8 * count, 8))
    at, parts = 8 + 8 * count, []
    for part_size in sizes:
        parts.append(os.pread(fd, part_size, at))
        at += part_size
    if at != size or any(len(part) != part_size for part, part_size in zip(parts, sizes)):
        raise SnapshotFailed(f"the snapshot's file: {size} bytes, not the {at} its header says")
    return parts


def _child(fd: int, encode: Callable[[], Sequence[bytes]], parent: int) -> None:
    code = 1
    try:
        _die_with_parent(parent)
        os.nice(CHILD_NICE)
        parts = encode()
        for part in (struct.pack(f"<Q{len(parts)}Q", len(parts), *map(len, parts)), *parts):
            view = memoryview(part)
            while view:
                view = view[os.write(fd, view):]
        code = 0
    except BaseException:  # noqa: BLE001 - the parent sees the exit status; stderr says why
        # Straight to the file descriptor: sys.stderr's lock may have been held by a thread
        # of the parent at the fork.
        os.write(2, "".join(traceback.format_exc()).encode())
    finally:
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    """SIGKILL when the parent dies (a SIGKILLed matching process leaves no child behind)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)
