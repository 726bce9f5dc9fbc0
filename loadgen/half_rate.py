"""Benchmark: issue 9's latency target, the ack p99 in open loop at half the maximum
rate, with the maximum measured in the same run.

    bazel run //loadgen:half_rate -- --rounds 3 --duration 20

The machine's speed swings by 2x from one hour to the next, so a maximum measured in
one hour and a latency in another say little. Each round here measures both, back to
back, on a fresh stack each time (3 shards, 2 order replicas, Envoy: what `make demo`
runs): first closed loop, S order-entry sessions with W commands in flight each (the
maximum), then open loop at `--fraction` (default half) of the calls/s the closed loop
just reached, the same sessions, the commands planned at fixed intervals and their
latency counted from the planned time. With --floor, the same open loop then runs
against the floor of that path: the echo servers of loadgen/floor_servers.py behind the
same Envoy (two replicas answering each session's commands at once: nothing behind
them), so the round shows how far above its floor the stack's latency is. --floor
journal (repeatable; also relay) runs the journal floor instead or as well: the order
service's batching to one backend that group-commits each command's journal row in its
shard's PostgreSQL database before answering, the least a durable ack costs. Prints each
round and the target (p99 under `--p99-ms`, default 50) per round; writes everything to
--report. Exits non-zero only if an acknowledged order was lost or is inconsistent: a
missed target is the news.

--hops: the stacks serve /metrics (as `make demo`'s do) and each run also prints, from them,
where an ack's time goes: the order replicas' batches to matching and each shard's group
commits (per second, mean commands, mean ms).

--setting KEY=VALUE (repeatable) goes into every service's environment. --ab-setting
KEY=VALUE (repeatable) measures the stack with those settings beside the stack without
them in every round (each at half its own maximum), so a setting's effect on the target
is read from pairs run minutes apart, not from runs an hour apart. --order-replicas N sets
the stacks' order replicas behind Envoy (default 1, as `make demo MODE=stream` runs them: on
2 cores a second replica costs CPU and latency and adds no throughput); --ab-order-replicas
N measures a stack with N beside it the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from loadgen.compare_shards import per_process_us, settings_of
from loadgen.floor import run_once


def run(variant: str, args, rate: float, workdir: Path, settings: dict | None = None,
        replicas: int | None = None) -> dict:
    """One load generator run on a fresh stack ("stack") or echo floor ("echo"), the
    order-entry sessions in closed loop if `rate` is 0, else in open loop at `rate`."""
    run_args = argparse.Namespace(clients=args.sessions, duration=args.duration, rate=rate)
    return run_once(variant, args.settings if settings is None else settings, run_args, workdir,
                    ("--sessions", str(args.sessions), "--window", str(args.window)), hops=args.hops,
                    replicas=replicas or args.order_replicas)


def describe(result: dict) -> dict:
    latency = result["latency"]["all"]
    us = per_process_us(result)
    return {"orders_per_s": result["orders_per_s"], "calls_per_s": result["calls_per_s"],
            "p50_ms": latency["p50_ms"], "p99_ms": latency["p99_ms"], "p99_9_ms": latency["p99_9_ms"],
            "cpu_us_per_order": round(sum(us.values()), 1),
            "loadgen_us_per_order": round(result["loadgen_cpu_s"] * 1e6 / max(result["orders_acked"], 1), 1),
            "cpu_seconds": result["cpu"]["seconds"],
            # None: not checked (a floor stores nothing)
            "lost": (result.get("durability") or {}).get("lost"),
            "inconsistent": (result.get("durability") or {}).get("inconsistent"),
            "hops": result.get("stack_hops") or {},
            # Each whole second's slowest acknowledged order (the last, partial one left out).
            "slowest_ms": result["orders_per_second"]["slowest_ms"][:max(int(result["duration_s"]), 1)]}


def stalls(slowest_ms: list[float], top: int = 3) -> str:
    """The typical second's slowest ack against the worst seconds': a p99 made by a few
    stalls (a snapshot, a pause) shows as seconds far above the median one."""
    if not slowest_ms:
        return ""
    worst = sorted(range(len(slowest_ms)), key=lambda s: -slowest_ms[s])[:top]
    return (f"slowest ack per second: median {statistics.median(slowest_ms):.0f} ms, worst "
            + ", ".join(f"{slowest_ms[s]:.0f} (second {s})" for s in sorted(worst)))


def line(label: str, run: dict) -> str:
    return (f"{label:>10}: {run['orders_per_s']:8.0f} orders/s {run['calls_per_s']:8.0f} calls/s  "
            f"p50 {run['p50_ms']:6.1f}  p99 {run['p99_ms']:6.1f}  p99.9 {run['p99_9_ms']:6.1f} ms  "
            f"CPU {run['cpu_us_per_order']:5.1f} us/order (+ load generator {run['loadgen_us_per_order']:.1f})  "
            f"lost {'-' if run['lost'] is None else run['lost']}"
            + (f"\n{'':>12}{stalls(run['slowest_ms'])}" if run.get("slowest_ms") else "")
            + "".join(f"\n{'':>12}{hop}: {v['per_s']:g}/s, {v['commands']:g} commands, {v['ms']:g} ms"
                      + (f" ({v['database_ms']:g} of them the database commit)" if "database_ms" in v else "")
                      for hop, v in sorted(run["hops"].items(), key=_replicas_first)))


def _replicas_first(hop: tuple[str, dict]) -> tuple[bool, str]:
    return hop[0] != "replica batches", hop[0]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20, help="seconds of each run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--window", type=int, default=1000, help="closed loop: commands in flight per session")
    parser.add_argument("--fraction", type=float, default=0.5, help="open loop at this fraction of the maximum")
    parser.add_argument("--p99-ms", type=float, default=50.0, help="the target for the open loop's p99")
    parser.add_argument("--floor", action="append", nargs="?", const="echo", default=[],
                        choices=["echo", "relay", "journal"], metavar="FLOOR",
                        help="also run each round's open loop against this floor behind Envoy (echo when "
                             "not named; repeatable): echo, relay or journal (loadgen/floor.py)")
    parser.add_argument("--hops", action="store_true",
                        help="the stacks serve /metrics (as make demo's do), and each run also prints the order "
                             "replicas' batches to matching and each shard's group commits: per second, mean "
                             "commands, mean ms (loadgen/stack_metrics.py)")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                        help="an environment setting for every service (repeatable)")
    parser.add_argument("--ab-setting", action="append", default=[], metavar="KEY=VALUE",
                        help="also measure the stack with this setting in every round (repeatable)")
    parser.add_argument("--order-replicas", type=int, default=1,
                        help="order-service replicas behind Envoy in each stack (1, as make demo MODE=stream)")
    parser.add_argument("--ab-order-replicas", type=int, default=None, metavar="N",
                        help="also measure the stack with N order replicas in every round (with --ab-setting: "
                             "that stack has both)")
    parser.add_argument("--report", default=os.path.join(os.environ.get("BUILD_WORKSPACE_DIRECTORY", "."),
                                                         "reports", "half_rate.json"))
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.rounds < 1 or args.sessions < 1 or args.window < 1:
        parser.error("--duration, --rounds, --sessions and --window must be positive")
    if args.order_replicas < 1 or (args.ab_order_replicas is not None and args.ab_order_replicas < 1):
        parser.error("--order-replicas and --ab-order-replicas must be positive")
    if not 0 < args.fraction <= 1:
        parser.error("--fraction must be within (0, 1]")
    args.settings = settings_of(parser, args.setting)
    args.ab_settings = settings_of(parser, args.ab_setting)
    return args


def half_rate_round(args, workdir: Path, settings: dict, label: str, replicas: int) -> dict:
    """The closed loop's maximum, then the open loop at its fraction, on fresh stacks."""
    closed = describe(run("stack", args, 0, workdir, settings, replicas))
    print(line(f"{label}closed", closed), flush=True)
    rate = round(closed["calls_per_s"] * args.fraction)
    opened = describe(run("stack", args, rate, workdir, settings, replicas))
    met = opened["p99_ms"] < args.p99_ms
    print(line(f"{label}open {rate}", opened), flush=True)
    print(f"{'':>10}  p99 {opened['p99_ms']:.1f} ms at {args.fraction:g} of the maximum: "
          f"{'PASS' if met else 'MISS'} (target < {args.p99_ms:g} ms)", flush=True)
    return {"closed": closed, "open_rate": rate, "open": opened, "met": met}


def main(argv=None) -> int:
    args = parse_args(argv)
    rounds = []
    ab = bool(args.ab_settings) or args.ab_order_replicas is not None
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.rounds):
            print(f"round {index + 1}", flush=True)
            variants = [("", args.settings, args.order_replicas)]
            if ab:  # which goes first alternates, so neither always runs in the later minutes
                variants.insert(index % 2, ("ab ", {**args.settings, **args.ab_settings},
                                            args.ab_order_replicas or args.order_replicas))
            result = {}
            for label, settings, replicas in variants:
                measured = half_rate_round(args, Path(tmp), settings, label, replicas)
                if label:
                    result["ab"] = measured
                else:
                    result.update(measured)
            for floor in args.floor:
                result[f"{floor}_floor"] = describe(run(floor, args, result["open_rate"], Path(tmp)))
                print(line(f"{floor} floor", result[f"{floor}_floor"]), flush=True)
            rounds.append(result)
    passed = sum(r["met"] for r in rounds)
    print(f"target p99 < {args.p99_ms:g} ms at {args.fraction:g} of the maximum: met in {passed} of {len(rounds)} rounds")
    if ab:
        changed = {**args.ab_settings, **({"order replicas": args.ab_order_replicas} if args.ab_order_replicas else {})}
        print(f"with {changed}: met in {sum(r['ab']['met'] for r in rounds)} of {len(rounds)} rounds; "
              "ab over plain, per round: max " + ", ".join(
                  f"{r['ab']['closed']['orders_per_s'] / r['closed']['orders_per_s']:.2f}x" for r in rounds)
              + "; p50 at half " + ", ".join(f"{r['ab']['open']['p50_ms'] / r['open']['p50_ms']:.2f}x" for r in rounds)
              + "; p99 at half " + ", ".join(f"{r['ab']['open']['p99_ms'] / r['open']['p99_ms']:.2f}x" for r in rounds))
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps({"args": vars(args), "rounds": rounds}, indent=2))
    print(f"report: {args.report}")
    runs = [r[k] for r in rounds for k in ("closed", "open")] + [r["ab"][k] for r in rounds if "ab" in r
                                                                 for k in ("closed", "open")]
    return 1 if any(run["lost"] or run["inconsistent"] for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
