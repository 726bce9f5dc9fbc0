"""Benchmark: the shard's idempotency-key table, native (KeyTable) against the Python
table it replaced (ClientOrderIds, kept as its reference), side by side in one run.

    bazel run -c opt //services/matching:bench_keys -- --keys 1000000 --rounds 2

Each round binds --keys keys in each table (the digests a shard computes, bound a
millisecond apart, about a tenth of them to orders still working), then times what the
shard does with them: a lookup per submit, the snapshot's copy (taken under the shard's
lock), its encoding (the keys in digest order, after the lock), and a restore from the
snapshot's records; and reports each table's memory per key (Python: tracemalloc of
the table, bound again under it; native: what its ring and index hold allocated). Both tables give the same
snapshot records, which the run checks.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

from _matching_native import pack_key_entries

from services.common.ids import EPOCH_MS
from services.matching.client_ids import ClientOrderIds, key_bytes, key_digest, key_table_of, new_key_table, pack_keys

START_NS = (EPOCH_MS + 10**9) * 10**6
STEP_NS = 100_000  # between binds: 1M keys in 100 s, within the 10-minute window


def timed(work) -> tuple[object, float]:
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def python_steps() -> dict:
    table = ClientOrderIds()
    return {
        "table": table,
        "copy": lambda: (list(table.keys), list(table.keys.values())),
        "encode": lambda copied: pack_keys(*key_bytes(*copied)),
        "restore": ClientOrderIds.from_packed,
    }


def native_steps() -> dict:
    table = new_key_table()
    return {"table": table, "copy": table.entries, "encode": pack_key_entries, "restore": key_table_of}


def bind(table, digests: list[int], working: set[int]) -> None:
    for i, digest in enumerate(digests):
        table.add(digest, i + 1, i, START_NS + i * STEP_NS, working)


def measure(kind: str, digests: list[int], working: set[int]) -> dict:
    steps = (python_steps if kind == "python" else native_steps)()
    table = steps["table"]
    gc.collect()
    _, bind_s = timed(lambda: bind(table, digests, working))
    if kind == "python":  # bound again, traced (tracemalloc slows the binds it sees)
        tracemalloc.start()
        traced = python_steps()["table"]
        bind(traced, digests, working)
        memory, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del traced
    else:
        memory = table.memory_bytes()
    now = START_NS + len(digests) * STEP_NS
    _, lookup_s = timed(lambda: [table.owner(d, now, working) for d in digests[::10]])
    copied, copy_s = timed(steps["copy"])
    packed, encode_s = timed(lambda: steps["encode"](copied))
    restored, restore_s = timed(lambda: steps["restore"](packed))
    assert len(restored) == len(table) == len(digests)
    n = len(digests)
    return {"packed": packed, "bind_us": bind_s * 1e6 / n, "lookup_us": lookup_s * 1e6 / len(digests[::10]),
            "copy_s": copy_s, "encode_s": encode_s, "restore_s": restore_s, "bytes_per_key": memory / n}


ROWS = (("bind_us", "bind, us per key"), ("lookup_us", "lookup, us per key"), ("copy_s", "snapshot copy, s"),
        ("encode_s", "snapshot encoding, s"), ("restore_s", "restore, s"), ("bytes_per_key", "memory, bytes per key"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    digests = [key_digest((i % 97, "SYM", f"c-{i}")) for i in range(args.keys)]
    working = set(range(1, args.keys + 1, 10))
    for round_ in range(1, args.rounds + 1):
        results = {}
        for kind in ("python", "native") if round_ % 2 else ("native", "python"):
            results[kind] = measure(kind, digests, working)
            gc.collect()
        assert results["python"]["packed"] == results["native"]["packed"], "the tables' snapshots differ"
        print(f"round {round_}: {args.keys:,} keys (same snapshot records from both)")
        print(f"  {'':24} {'python':>10} {'native':>10} {'python/native':>14}")
        for field, label in ROWS:
            py, native = results["python"][field], results["native"][field]
            print(f"  {label:24} {py:10.3f} {native:10.3f} {py / native:13.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
