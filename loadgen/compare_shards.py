"""Benchmark: the whole stack with 1 symbol shard versus 3, same load, side by side.

    bazel run //loadgen:compare_shards -- --duration 30 --rounds 2 --clients 40

With --setting KEY=VALUE (repeatable) it compares one layout (--ranges, default three
shards) as it is against the same layout with those service settings instead, e.g.
--setting BOURSE_MARKET_DATA_INTERVAL_MS=0 measures what market-data conflation saves.

Each round starts a fresh stack per layout (PostgreSQL, Redis, persistence, matching
shards, two order-service replicas, Envoy), runs the load generator against it, and
stops it; layouts alternate within a round so drift on the shared machine hits both.
Prints orders/s, p50/p99, CPU microseconds per order per process, and the ratios
(3 shards / 1 shard); also, sampled while the load runs (after a warm-up), PostgreSQL's
commits per order (pg_stat_database, all shard databases: group commits and claim
transactions; reads end in rollbacks and do not count) and the orders each matching group
commit carried (GetShardStatus). Writes everything to --report.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import psycopg
from bourse.matching.v1 import matching_service_pb2 as matching_pb2
from bourse.matching.v1 import matching_service_pb2_grpc as matching_grpc

from infra.local.stack import Stack

LAYOUTS = {"1 shard": ("A-Z", {}), "3 shards": ("A-G,H-O,P-Z", {})}


def counters(stack: Stack) -> tuple[float, int, int, int]:
    """(time, PostgreSQL commits over the shard databases, matching batches, commands)."""
    commits = 0
    for url in stack.db_urls(driver="postgresql"):
        with psycopg.connect(url, autocommit=True) as conn:
            commits += conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
                                    ).fetchone()[0]
    batches = commands = 0
    for index, address in enumerate(stack.matching_addresses):
        with grpc.insecure_channel(address) as channel:
            status = matching_grpc.MatchingServiceStub(channel).GetShardStatus(
                matching_pb2.GetShardStatusRequest(shard_index=index), timeout=5)
        batches, commands = batches + status.committed_batches, commands + status.committed_commands
    return time.monotonic(), commits, batches, commands


def run_once(ranges: str, settings: dict[str, str], args, workdir: Path, processes: int | None = None) -> dict:
    report = workdir / f"{len(ranges.split(','))}-{len(list(workdir.iterdir()))}.json"
    processes = processes or args.matching_processes
    with Stack(shard_ranges=ranges, order_replicas=2, service_env=settings, matching_processes=processes) as stack:
        command = [sys.executable, "-m", "loadgen.main", "--target", stack.target, "--clients", str(args.clients),
                   "--duration", str(args.duration), "--report", str(report), "--plot", "", "--no-progress",
                   "--api-keys", ",".join(stack.api_keys), "--seed", "7", "--rate", str(args.rate)]
        for url in stack.db_urls(driver="postgresql"):
            command += ["--db-url", url]
        for name, pid in stack.pids().items():
            command += ["--pid", f"{name}={pid}"]
        loadgen = subprocess.Popen(command, env=stack.env(), stdout=subprocess.DEVNULL)
        try:
            # Steady state: after a warm-up, until just before the load ends.
            time.sleep(min(3.0, args.duration / 4))
            first = counters(stack)
            time.sleep(max(1.0, args.duration - 2 * min(3.0, args.duration / 4)))
            last = counters(stack)
        finally:
            if loadgen.wait() != 0:
                raise RuntimeError(f"the load generator failed with {loadgen.returncode}")
    result = json.loads(report.read_text())
    seconds, commits, batches, commands = (b - a for a, b in zip(first, last))
    result["steady"] = {"commits_per_s": commits / seconds, "orders_per_commit_batch": commands / max(batches, 1),
                        "commands_per_s": commands / seconds}
    return result


def settings_of(parser: argparse.ArgumentParser, pairs: list[str]) -> dict[str, str]:
    """--setting KEY=VALUE flags as a dict (the benchmarks' service settings)."""
    if not all("=" in pair for pair in pairs):
        parser.error("--setting takes KEY=VALUE")
    return dict(pair.split("=", 1) for pair in pairs)


def per_process_us(result: dict) -> dict[str, float]:
    """CPU us per order by kind of process (matching-0..2 summed as matching, etc.)."""
    orders = max(result["orders_acked"], 1)
    kinds: dict[str, float] = {}
    for name, seconds in result["cpu"]["seconds"].items():
        kind = name.split("-")[0]
        kinds[kind] = kinds.get(kind, 0.0) + (seconds or 0.0) * 1e6 / orders
    return kinds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=float, default=0, help="open loop at this many calls/s (0: closed loop)")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                        help="compare the layout as it is with these service settings instead of 1 vs 3 shards")
    parser.add_argument("--ranges", default=LAYOUTS["3 shards"][0], help="the layout --setting runs")
    parser.add_argument("--matching-processes", type=int, default=1,
                        help="processes serving the shards (1: all in one, as the demo runs them)")
    parser.add_argument("--versus-processes", type=int, default=0, metavar="N",
                        help="compare the layout (--ranges) with --matching-processes against N processes")
    parser.add_argument("--report", default=os.path.join(os.environ.get("BUILD_WORKSPACE_DIRECTORY", "."),
                                                         "reports", "compare_shards.json"))
    args = parser.parse_args(argv)
    variants = LAYOUTS
    if args.setting:
        changed = settings_of(parser, args.setting)
        variants = {"as is": (args.ranges, {}), " ".join(args.setting): (args.ranges, changed)}
    if args.versus_processes:
        variants = {f"{args.matching_processes} process(es)": (args.ranges, {}),
                    f"{args.versus_processes} process(es)": (args.ranges, {"_processes": str(args.versus_processes)})}
    results: dict[str, list[dict]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            order = list(variants.items())
            if round_index % 2:
                order.reverse()
            for name, (ranges, settings) in order:
                settings = dict(settings)
                processes = int(settings.pop("_processes", 0)) or None
                result = run_once(ranges, settings, args, Path(tmp), processes)
                results[name].append(result)
                print(f"round {round_index + 1} {name}: {result['orders_per_s']:.0f} orders/s, "
                      f"p99 {result['latency']['submit']['p99_ms']:.1f} ms, lost {result['durability']['lost']}",
                      flush=True)
    summary = {}
    for name, runs in results.items():
        kinds: dict[str, list[float]] = {}
        for run in runs:
            for kind, us in per_process_us(run).items():
                kinds.setdefault(kind, []).append(us)
        summary[name] = {
            "orders_per_s": statistics.median(r["orders_per_s"] for r in runs),
            "p50_ms": statistics.median(r["latency"]["submit"]["p50_ms"] for r in runs),
            "p99_ms": statistics.median(r["latency"]["submit"]["p99_ms"] for r in runs),
            "cpu_us_per_order": {k: round(statistics.median(v), 1) for k, v in sorted(kinds.items())},
            "cpu_us_per_order_total": statistics.median(r["cpu"]["us_per_order"] for r in runs),
            "lost": sum(r["durability"]["lost"] for r in runs),
            # Commands (orders and cancels) per matching group commit, and PostgreSQL
            # commits per command, while the load ran.
            "commands_per_group_commit": statistics.median(r["steady"]["orders_per_commit_batch"] for r in runs),
            "db_commits_per_command": statistics.median(
                r["steady"]["commits_per_s"] / max(r["steady"]["commands_per_s"], 1) for r in runs),
        }
    (name_a, a), (name_b, b) = summary.items()
    ratios = {"orders_per_s": b["orders_per_s"] / a["orders_per_s"], "p99": b["p99_ms"] / a["p99_ms"],
              "cpu_per_order": b["cpu_us_per_order_total"] / a["cpu_us_per_order_total"]}
    width = max(12, len(name_b) + 2)

    def row(label: str, first: str, second: str, ratio: str = "") -> None:
        print(f"{label:22}{first:>12}{second:>{width}}{ratio:>8}")

    row("", name_a, name_b, "B / A")
    row("orders/s", f"{a['orders_per_s']:.0f}", f"{b['orders_per_s']:.0f}", f"{ratios['orders_per_s']:.2f}")
    row("submit p50 ms", f"{a['p50_ms']:.1f}", f"{b['p50_ms']:.1f}")
    row("submit p99 ms", f"{a['p99_ms']:.1f}", f"{b['p99_ms']:.1f}", f"{ratios['p99']:.2f}")
    row("CPU us/order, total", f"{a['cpu_us_per_order_total']:.0f}", f"{b['cpu_us_per_order_total']:.0f}",
        f"{ratios['cpu_per_order']:.2f}")
    for kind in sorted(set(a["cpu_us_per_order"]) | set(b["cpu_us_per_order"])):
        row("  " + kind, f"{a['cpu_us_per_order'].get(kind, 0):.0f}", f"{b['cpu_us_per_order'].get(kind, 0):.0f}")
    row("commands/group commit", f"{a['commands_per_group_commit']:.1f}", f"{b['commands_per_group_commit']:.1f}")
    row("db commits/command", f"{a['db_commits_per_command']:.2f}", f"{b['db_commits_per_command']:.2f}")
    row("lost", str(a["lost"]), str(b["lost"]))
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps({"args": vars(args), "summary": summary, "ratios": ratios,
                                             "runs": results}, indent=2))
    return 0 if a["lost"] == b["lost"] == 0 else 1

if __name__ == "__main__":
    sys.exit(main())
