"""Soak (a benchmark, not a test): the original load for a long run while every kind of
process is restarted in turn, as a rolling deployment would, then memory after it.

    bazel run //loadgen:soak -- --duration 600

Starts the whole stack (3 shards, 2 order replicas), drives it with the load generator
(40 closed-loop clients) for --duration seconds, and at evenly spaced moments restarts
one process of every kind in turn (SIGTERM, so it drains, then started again): an order
replica, the matching process, the persistence process, Envoy. Reports, per process, its
memory (proportional set size; PostgreSQL with its backends) idle at the start, warm (30 s
into the load), at the end of the load and after --settle seconds idle; the load's errors;
and `lost` (every acknowledged order looked up in the databases). A service or Envoy
that was not restarted must end within 10% of its warm memory; PostgreSQL and Redis keep
data by design and are only reported, and a restarted process started over.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from infra.admin.__main__ import shard_rows
from infra.local.stack import DEMO_KEYS, Stack

RESTARTED = ("order-0", "matching-0", "persistence", "envoy")
GROWTH_LIMIT = 0.10
WARM_S = 30  # the baseline: memory once the load has run this long (pools, caches, arenas filled)
# They keep data by design (tables, books and trades, capped streams): reported, not judged.
STORES = ("postgres", "redis")


def rss_mib(pid: int) -> float:
    """Memory of the process and its children (PostgreSQL's backends), in MiB: their
    proportional set size, so that pages they share are counted once."""
    try:
        process = psutil.Process(pid)
        return sum(p.memory_full_info().pss for p in (process, *process.children(recursive=True))) / 2**20
    except psutil.NoSuchProcess:
        return 0.0


def sample(stack: Stack) -> dict[str, float]:
    return {name: round(rss_mib(pid), 1) for name, pid in stack.pids().items()}


def restarts(stack: Stack, duration: float, log: list) -> threading.Thread:
    """Restarts each of RESTARTED at evenly spaced moments of the load; logs what it did."""
    def run():
        gap = duration / (len(RESTARTED) + 1)
        for name in RESTARTED:
            time.sleep(gap)
            started = time.monotonic()
            stack.kill(name, signal.SIGTERM)
            stack.restart(name)
            log.append({"process": name, "at_s": round(time.monotonic() - begun, 1),
                        "down_s": round(time.monotonic() - started, 1)})
    begun = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--settle", type=float, default=20, help="idle seconds before the last memory sample")
    parser.add_argument("--report", default=os.path.join(os.environ.get("BUILD_WORKSPACE_DIRECTORY", "."),
                                                         "reports", "soak.json"))
    args = parser.parse_args(argv)
    with Stack(order_replicas=2) as stack:
        time.sleep(5)  # warmed up and idle
        start = sample(stack)
        load_report = Path(args.report).with_name("soak-loadgen.json")
        load_report.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "loadgen.main", "--target", stack.target, "--clients", str(args.clients),
                   "--duration", str(args.duration), "--report", str(load_report), "--plot", "", "--no-progress",
                   "--api-keys", ",".join(DEMO_KEYS), "--max-error-rate", "1"]
        for url in stack.db_urls(driver="postgresql"):
            command += ["--db-url", url]
        events: list = []
        load = subprocess.Popen(command, env=stack.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        restarter = restarts(stack, args.duration, events)
        time.sleep(min(WARM_S, args.duration / 10))
        warm = sample(stack)
        output = load.communicate()[0]
        restarter.join()
        loaded = sample(stack)
        time.sleep(args.settle)
        settled = sample(stack)
        # What the matching process holds by design at the end: the books the load left.
        resting = sum(row.get("resting", 0) for row in shard_rows(stack.matching_addresses,
                                                                 stack.persistence_address))
    result = json.loads(load_report.read_text())
    restarted = {e["process"] for e in events}
    rows = {name: {"idle_start_mib": start.get(name), "warm_mib": warm.get(name), "end_of_load_mib": loaded.get(name),
                   "settled_mib": settled.get(name), "restarted": name in restarted,
                   "growth": round(settled[name] / warm[name] - 1, 3) if warm.get(name) else None}
            for name in settled}
    over = [n for n, r in rows.items() if not r["restarted"] and n not in STORES
            and r["growth"] is not None and r["growth"] > GROWTH_LIMIT]
    summary = {"duration_s": args.duration, "orders_per_s": result["orders_per_s"], "errors": result["errors"],
               "durability": result["durability"], "restarts": events, "memory": rows,
               "memory_over_limit": over, "resting_orders_at_end": resting}
    Path(args.report).write_text(json.dumps(summary, indent=2))
    print(output.strip().splitlines()[-1] if output.strip() else "")
    print(f"orders/s {result['orders_per_s']:.0f}, errors {result['errors']['total']} "
          f"({json.dumps(result['errors']['by_code'])}), lost {result['durability']['lost']}")
    for event in events:
        print(f"restarted {event['process']} at {event['at_s']} s (down and back in {event['down_s']} s)")
    print(f"{'process':14}{'idle MiB':>10}{'warm':>8}{'end of load':>13}{'settled':>10}{'vs warm':>9}")
    for name, row in rows.items():
        growth = "-" if row["growth"] is None else f"{row['growth']:+.0%}"
        mark = " (restarted: its own start)" if row["restarted"] else " (a store: data)" if name in STORES else ""
        print(f"{name:14}{row['idle_start_mib']!s:>10}{row['warm_mib']!s:>8}{row['end_of_load_mib']!s:>13}"
              f"{row['settled_mib']!s:>10}{growth:>9}{mark}")
    print(f"resting orders left by the load (held by the matching process): {resting}")
    print(f"report: {args.report}")
    failed = result["durability"]["lost"] > 0 or bool(over)
    if over:
        print(f"MEMORY: {', '.join(over)} grew more than {GROWTH_LIMIT:.0%} and did not come back", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
