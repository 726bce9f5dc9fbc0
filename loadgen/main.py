"""Load generator: submits and cancels orders through Envoy for D seconds, then the report
(throughput, latency, errors, CPU per order) and the lost-order check.

Closed loop (default, --rate 0): N clients, each sends its next call when the previous one
has answered, so throughput is whatever the stack sustains at that concurrency.

    python -m loadgen.main --target 127.0.0.1:8080 --clients 40 --duration 60 \
        --api-keys k1,k2 --db-url postgresql://... --pid envoy=123 --pid order0=456

Open loop (--rate R): R calls (orders + cancels) per second in total, at fixed intervals
or Poisson arrivals (--arrivals poisson), dealt round robin to the N clients; each call
starts at its planned time even if earlier ones are still in flight, and its latency is
counted from that planned time, so queueing shows (no coordinated omission). At most
--max-in-flight calls run at once; a call due beyond that is not sent and is reported as
dropped. See loadgen/openloop.py.

    python -m loadgen.main --target 127.0.0.1:8080 --rate 300 --duration 60 --api-keys k1,k2

Stream mode (--sessions S): S order-entry sessions (OrderEntry streams, loadgen/stream.py),
each with --window W closed-loop clients, so each session has up to W commands in
flight; session s uses key s mod n. With --rate, open loop over the sessions: the calls
are dealt to the clients and client i sends on session i mod S; every --stream-tick-ms
the calls due go out, one message per session (latency still counts from each call's
planned time). Same order mix, report and lost check.

    python -m loadgen.main --target 127.0.0.1:8080 --sessions 4 --window 250 --api-keys k1,k2

A client's calls may overlap in open loop; its workload state stays consistent because
each call is drawn when it starts: a cancel only targets an order whose submit has been
acknowledged, and is taken off the client's resting orders as it is sent.

Exit code 1 when an acknowledged order is lost or stored inconsistently, or when the
error rate is above --max-error-rate. The order mix is described in loadgen/workload.py.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import time
import uuid
from collections import Counter

import grpc
import uvloop

from bourse.order.v1 import order_service_pb2, order_service_pb2_grpc
from loadgen import durability, openloop, report, stack_metrics, stream
from loadgen.workload import ClientWorkload, Market, Mix, Modify, Submit
from services.common.config import symbols_from_env

# The cyclic collector's thresholds here: at Python's defaults a collection ran every few
# hundred calls and cost as much as the services' did. A young collection every 50,000 new
# objects took 5-10 ms, every 1.2 s at 14,000 calls/s, and each call in flight then was
# timed that much late: every 5,000 (as the services), under a millisecond. What exists
# before the load starts (modules, channels) is frozen out of every collection (gc.freeze).
GC_THRESHOLDS = (5_000, 20, 100)
# A cancel that loses the race against a fill: the right answer, not a failure.
# A cancel or modify of an order that filled meanwhile: the right answer, not an error.
EXPECTED = {("cancel", grpc.StatusCode.FAILED_PRECONDITION), ("modify", grpc.StatusCode.FAILED_PRECONDITION)}
# Each kind of call: the unary method and its request.
_UNARY = {"submit": ("SubmitOrder", order_service_pb2.SubmitOrderRequest),
          "modify": ("ModifyOrder", order_service_pb2.ModifyOrderRequest),
          "cancel": ("CancelOrder", order_service_pb2.CancelOrderRequest)}
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 20_000),
    # Separate connections per channel (gRPC would otherwise share one subchannel),
    # so Envoy spreads them over its workers as many real clients would.
    ("grpc.use_local_subchannel_pool", 1),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loadgen.main", description=__doc__.split("\n")[0])
    p.add_argument("--target", default="127.0.0.1:8080", help="Envoy (or an order service) host:port")
    p.add_argument("--clients", type=int, default=40,
                   help="simulated clients: concurrent in closed loop; in open loop the calls are dealt to them")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    p.add_argument("--rate", type=float, default=0.0,
                   help="open loop: calls (orders + cancels) per second in total; 0: closed loop")
    p.add_argument("--arrivals", choices=openloop.ARRIVALS, default="fixed",
                   help="open loop: evenly spaced calls or Poisson arrivals")
    p.add_argument("--max-in-flight", type=int, default=2000,
                   help="open loop: calls running at once; calls due beyond this are dropped (and reported)")
    p.add_argument("--sessions", type=int, default=0,
                   help="stream mode: order-entry sessions (0: unary calls, the original test)")
    p.add_argument("--window", type=int, default=100,
                   help="stream mode: closed-loop clients per session (its commands in flight)")
    p.add_argument("--stream-tick-ms", type=float, default=5.0,
                   help="stream open loop: the commands due within a tick go out together, one message per "
                        "session (latency still counts from each command's planned time)")
    p.add_argument("--channels", type=int, default=0,
                   help="gRPC connections shared round robin by the clients (0: min(clients, 8))")
    p.add_argument("--api-keys", default="", help="k1,k2,...: client i uses key i mod n")
    p.add_argument("--ca-file", default="", help="connect with TLS, trusting this PEM CA (make up prints it); "
                                                 "plaintext (h2c) without")
    p.add_argument("--symbols", default="", help="comma/space separated; default BOURSE_SYMBOLS or the built-in list")
    p.add_argument("--db-url", action="append", default=[], help="PostgreSQL shard URL for the lost check (repeat)")
    p.add_argument("--pid", action="append", default=[], type=_pid, help="name=pid of a stack process (repeat)")
    p.add_argument("--metrics-url", action="append", default=[], type=_pid_like,
                   help="name=URL of a stack process's /metrics, scraped every second (repeat)")
    p.add_argument("--metrics-plot", default="reports/stack_metrics.png",
                   help="PNG of the matching shards' group commits over the run (with --metrics-url); empty for none")
    p.add_argument("--report", default="reports/loadgen.json")
    p.add_argument("--plot", default="reports/latency.png", help="PNG to write; empty for none")
    p.add_argument("--modify-share", type=float, default=0.0,
                   help="fraction of calls that modify a resting order (taken from the limit orders; "
                        "0, the original test's mix, by default)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--call-timeout", type=float, default=10.0, help="deadline of each call, seconds")
    p.add_argument("--max-error-rate", type=float, default=0.0, help="fraction of calls allowed to fail")
    p.add_argument("--no-progress", action="store_true", help="plain progress lines instead of a live bar")
    args = p.parse_args(argv)
    if args.clients < 1 or args.duration <= 0:
        p.error("--clients must be >= 1 and --duration > 0")
    if args.rate < 0 or args.max_in_flight < 1:
        p.error("--rate must be >= 0 and --max-in-flight >= 1")
    if not 0 <= args.modify_share <= 0.8:
        p.error("--modify-share must be within 0..0.8")
    args.open_loop = args.rate > 0
    if args.sessions < 0 or args.window < 1:
        p.error("--sessions must be >= 0 and --window >= 1")
    if args.stream_tick_ms <= 0:
        p.error("--stream-tick-ms must be > 0")
    if args.sessions and not args.open_loop:
        args.clients = args.sessions * args.window  # closed loop: W clients per session
    args.keys = [k.strip() for k in args.api_keys.split(",") if k.strip()]
    raw = args.symbols.replace(",", " ").split()
    args.symbol_list = tuple(sorted(set(raw))) if raw else symbols_from_env()
    args.pids = dict(args.pid)
    args.channels = args.channels or min(args.sessions or args.clients, 8)
    return args


def _pid_like(spec: str) -> tuple[str, str]:
    name, sep, url = spec.partition("=")
    if not sep or not name or not url.startswith("http"):
        raise argparse.ArgumentTypeError(f"bad --metrics-url {spec!r}: want name=http://host:port/metrics")
    return name, url


def _pid(spec: str) -> tuple[str, int]:
    name, sep, pid = spec.partition("=")
    if not sep or not name or not pid.isdigit():
        raise argparse.ArgumentTypeError(f"bad --pid {spec!r}: want name=pid")
    return name, int(pid)


class Run:
    """Everything measured during the run (one event loop, so no locks)."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.run_id = uuid.uuid4().hex[:10]
        self.market = Market(args.symbol_list, Mix(modify_share=args.modify_share))
        self.histograms = {"submit": report.new_histogram(), "cancel": report.new_histogram()}
        if args.modify_share:
            self.histograms["modify"] = report.new_histogram()
        self.calls = 0
        self.calls_by_deadline = 0
        self.orders_acked = 0
        self.cancels_ok = 0
        self.modifies_ok = 0
        self.replayed = 0
        self.errors: Counter = Counter()
        self.expected: Counter = Counter()
        self.statuses: Counter = Counter()
        self.acked: dict[int, durability.Acked] = {}
        self.timeline = report.Timeline()
        self.start = 0.0
        self.deadline = 0.0
        self.clock = time.perf_counter
        self.workloads: dict[int, ClientWorkload] = {}
        self.schedule = openloop.Stats()
        self.start_lag = report.new_histogram()
        self.stream_messages: dict | None = None

    def metadata(self, index: int):
        keys = self.args.keys
        return (("authorization", f"Bearer {keys[index % len(keys)]}"),) if keys else None

    def workload(self, index: int) -> ClientWorkload:
        work = self.workloads.get(index)
        if work is None:
            rng = random.Random(self.args.seed * 1_000_003 + index)
            work = self.workloads[index] = ClientWorkload(index, self.run_id, self.market, rng)
        return work

    def draw(self, index: int) -> tuple[str, Submit | Cancel | Modify, dict]:
        """Client `index`'s next call: its kind, the call, and its request's fields. A call
        is drawn when it starts, so the client's resting orders only hold acknowledged
        orders not already being cancelled."""
        call = self.workload(index).next()
        if isinstance(call, Submit):
            return "submit", call, dict(
                client_order_id=call.client_order_id, symbol=call.symbol, side=call.side,
                order_type=call.order_type, time_in_force=call.time_in_force, price=call.price,
                quantity=call.quantity)
        if isinstance(call, Modify):
            return "modify", call, dict(order_id=call.order_id, symbol=call.symbol, price=call.price,
                                        quantity=call.quantity)
        return "cancel", call, dict(order_id=call.order_id, symbol=call.symbol)

    def settle(self, index: int, kind: str, call, began: float, ended: float, order=None, replayed: bool = False,
               code: grpc.StatusCode | None = None) -> None:
        """Counts one call's outcome: its `order`, or the status `code` it failed with."""
        self.calls += 1
        self.calls_by_deadline += ended <= self.deadline
        if code is not None:
            if (kind, code) in EXPECTED:
                self.expected[f"{kind}:{code.name}"] += 1
                report.record(self.histograms[kind], (ended - began) * 1e6)
            else:
                self.errors[code.name] += 1
                self.timeline.add(ended - self.start, ok=False)
            return
        report.record(self.histograms[kind], (ended - began) * 1e6)
        work = self.workload(index)
        if kind == "submit":
            self.orders_acked += 1
            self.replayed += replayed
            self.statuses[order.status] += 1
            self.acked[order.order_id] = (order.status, order.filled_quantity)
            work.on_submitted(order.order_id, call.symbol, order.status, order.leaves_quantity)
            self.timeline.add(ended - self.start, ok=True, latency_us=(ended - began) * 1e6)
        else:
            if kind == "cancel":
                self.cancels_ok += 1
            else:
                self.modifies_ok += 1
                work.on_submitted(order.order_id, call.symbol, order.status, order.leaves_quantity)
            if order.order_id in self.acked:
                self.acked[order.order_id] = (order.status, order.filled_quantity)

    async def call(self, index: int, stub, began: float) -> None:
        """One call of client `index` on `stub` (the unary stub or a StreamSession); latency
        is counted from `began` (the planned start in open loop)."""
        kind, call, fields = self.draw(index)
        method, request = _UNARY[kind]
        try:
            response = await getattr(stub, method)(request(**fields), metadata=self.metadata(index),
                                                    timeout=self.args.call_timeout)
        except (grpc.aio.AioRpcError, stream.CommandRefused) as error:
            self.settle(index, kind, call, began, self.clock(), code=error.code())
            return
        # Only a submit's answer says whether it replayed an earlier submit.
        self.settle(index, kind, call, began, self.clock(), response.order, kind == "submit" and response.replayed)

    def stream_command(self, index: int) -> tuple:
        """Client `index`'s next call as an OrderEntryCommand (ClosedLoop's and OpenLoop's draw)."""
        kind, call, fields = self.draw(index)
        return order_service_pb2.OrderEntryCommand(**{kind: fields}), (kind, call)

    def stream_settle(self, index: int, drawn: tuple, began: float, ended: float, result, code) -> None:
        kind, call = drawn
        if result is None:
            self.settle(index, kind, call, began, ended, code=code)
        else:
            self.settle(index, kind, call, began, ended, result.order, result.replayed)

    async def client(self, index: int, stub) -> None:
        """Closed loop: the next call leaves when the previous one has answered."""
        while self.clock() < self.deadline:
            await self.call(index, stub, self.clock())

    def arrivals(self):
        args = self.args
        return openloop.arrival_offsets(args.rate, args.duration, args.arrivals, random.Random(args.seed * 7_919 + 17))

    async def open_loop(self, stubs, sleep=asyncio.sleep) -> None:
        args = self.args
        offsets = self.arrivals()

        def start(number: int, due: float):
            index = number % args.clients
            return self.call(index, stubs[index % len(stubs)], due)

        await openloop.run(offsets, start, max_in_flight=args.max_in_flight, clock=self.clock, sleep=sleep,
                           origin=self.start, stats=self.schedule,
                           on_lag=lambda lag: report.record(self.start_lag, lag * 1e6))

    async def drive(self, stubs, progress: bool = True, closed_loops=(), open_sessions=None) -> float:
        """Runs the load over ready stubs (or stream.ClosedLoops, or a stream.OpenLoop);
        returns the seconds until the last call answered."""
        args = self.args
        self.start = self.clock()
        self.deadline = self.start + args.duration
        ticker = asyncio.create_task(self.progress(self.deadline)) if progress else None
        if closed_loops:
            await asyncio.gather(*(loop.run(self.deadline) for loop in closed_loops))
        elif open_sessions is not None:
            await open_sessions.run(self.arrivals(), self.start)
        elif args.open_loop:
            await self.open_loop(stubs)
        else:
            await asyncio.gather(*(self.client(i, stubs[i % len(stubs)]) for i in range(args.clients)))
        elapsed = self.clock() - self.start
        if ticker is not None:
            await ticker
        return elapsed

    def _status_line(self, rate: float) -> str:
        line = f"{rate:7.0f} orders/s  acked {self.orders_acked}  errors {sum(self.errors.values())}"
        if self.args.open_loop:
            line += f"  in flight {self.schedule.in_flight}  dropped {self.schedule.dropped}"
        return line

    async def progress(self, deadline: float) -> None:
        duration = self.args.duration
        if self.args.no_progress:
            last_t, last_n = self.start, 0
            while time.perf_counter() < deadline:
                await asyncio.sleep(min(10.0, max(0.0, deadline - time.perf_counter())))
                now = time.perf_counter()
                rate = (self.orders_acked - last_n) / max(now - last_t, 1e-9)
                print(f"[{now - self.start:5.0f}/{duration:.0f} s] {self._status_line(rate).strip()}", flush=True)
                last_t, last_n = now, self.orders_acked
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("load"), BarColumn(), TimeElapsedColumn(), TextColumn("{task.description}"))
        with Progress(*columns, transient=False, refresh_per_second=4) as bar:
            task = bar.add_task("", total=duration)
            last_t, last_n = self.start, 0
            while time.perf_counter() < deadline:
                await asyncio.sleep(0.5)
                now = time.perf_counter()
                rate = (self.orders_acked - last_n) / max(now - last_t, 1e-9)
                last_t, last_n = now, self.orders_acked
                bar.update(task, completed=min(now - self.start, duration), description=self._status_line(rate))
            bar.update(task, completed=duration)

    async def execute(self) -> float:
        args = self.args
        if args.ca_file:
            with open(args.ca_file, "rb") as ca:
                credentials = grpc.ssl_channel_credentials(ca.read())
            channels = [grpc.aio.secure_channel(args.target, credentials, options=CHANNEL_OPTIONS)
                        for _ in range(args.channels)]
        else:
            channels = [grpc.aio.insecure_channel(args.target, options=CHANNEL_OPTIONS) for _ in range(args.channels)]
        try:
            try:
                await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), 15)
            except asyncio.TimeoutError:
                raise SystemExit(f"cannot connect to {args.target} within 15 s") from None
            stubs = [order_service_pb2_grpc.OrderServiceStub(c) for c in channels]
            if not args.sessions:
                return await self.drive(stubs)
            open_sessions = None
            if args.open_loop:  # client i sends on session i mod S
                loops = []
                open_sessions = stream.OpenLoop(
                    stubs, self.metadata, args.sessions, args.clients, self.stream_command, self.stream_settle,
                    self.clock, args.call_timeout, args.max_in_flight, self.schedule,
                    lambda lag: report.record(self.start_lag, lag * 1e6), args.stream_tick_ms / 1000)
                sessions = open_sessions.sessions
            else:  # client i is one of session i // window's clients
                loops = [stream.ClosedLoop(stubs[s % len(stubs)], self.metadata(s),
                                           list(range(s * args.window, (s + 1) * args.window)),
                                           self.stream_command, self.stream_settle, self.clock, args.call_timeout)
                         for s in range(args.sessions)]
                sessions = [loop.session for loop in loops]
            await asyncio.gather(*(session.start() for session in sessions))
            try:
                return await self.drive(sessions, closed_loops=loops, open_sessions=open_sessions)
            finally:
                self.stream_messages = {"sent": sum(s.messages_sent for s in sessions),
                                        "received": sum(s.messages_received for s in sessions)}
                await asyncio.gather(*(session.stop() for session in sessions))
        finally:
            await asyncio.gather(*(c.close() for c in channels))

    def summary(self, elapsed: float, cpu: dict, loadgen_cpu: float) -> dict:
        args = self.args
        merged = report.new_histogram()
        for histogram in self.histograms.values():
            merged.add(histogram)
        errors = sum(self.errors.values())
        return {
            "run_id": self.run_id,
            "target": args.target,
            "mode": "stream" if args.sessions else "open" if args.open_loop else "closed",
            "sessions": args.sessions or None,
            "window": args.window if args.sessions else None,
            "stream_messages": self.stream_messages,
            "clients": args.clients,
            "channels": args.channels,
            "duration_s": args.duration,
            "elapsed_s": round(elapsed, 3),
            "seed": args.seed,
            "symbols": len(args.symbol_list),
            "api_keys": len(args.keys),
            "calls": self.calls,
            "orders_acked": self.orders_acked,
            "cancels_ok": self.cancels_ok,
            "modifies_ok": self.modifies_ok,
            "replayed": self.replayed,
            "orders_per_s": round(report.rate(self.orders_acked, elapsed), 1),
            "calls_per_s": round(report.rate(self.calls, elapsed), 1),
            "acked_statuses": {_status_name(s): n for s, n in sorted(self.statuses.items())},
            "latency": {
                "all": report.latency_summary(merged),
                "submit": report.latency_summary(self.histograms["submit"]),
                **{kind: report.latency_summary(h) for kind, h in self.histograms.items() if kind != "submit"},
            },
            "errors": {"total": errors, "rate": report.error_rate(errors, self.calls), "by_code": dict(self.errors)},
            "expected_refusals": dict(self.expected),
            "cpu": report.cpu_summary(cpu, self.orders_acked),
            "loadgen_cpu_s": round(loadgen_cpu, 3),
            "orders_per_second": self.timeline.series(elapsed),
            "open_loop": self.open_loop_summary() if args.open_loop else None,
        }

    def open_loop_summary(self) -> dict:
        args, stats = self.args, self.schedule
        return {
            "arrivals": args.arrivals,
            "intended_rate": args.rate,
            "max_in_flight": args.max_in_flight,
            "scheduled": stats.scheduled,
            "started": stats.started,
            "dropped": stats.dropped,
            "peak_in_flight": stats.peak_in_flight,
            # Calls sent per second of the window, and calls answered within it per second.
            "offered_rate": round(report.rate(stats.started, args.duration), 1),
            "achieved_rate": round(report.rate(self.calls_by_deadline, args.duration), 1),
            "start_lag": report.latency_summary(self.start_lag),
        }


def _status_name(number: int) -> str:
    from bourse.type.v1 import types_pb2

    return types_pb2.OrderStatus.Name(number) if number in types_pb2.OrderStatus.values() else str(number)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = Run(args)
    if args.open_loop:
        load = f"open loop {args.rate:g} calls/s ({args.arrivals}) over {args.clients} clients"
        load += f" on {args.sessions} order-entry sessions" if args.sessions else ""
    elif args.sessions:
        load = f"{args.sessions} order-entry sessions x {args.window} in flight"
    else:
        load = f"{args.clients} closed-loop clients"
    print(f"loadgen {run.run_id}: {load} x {args.duration:g} s -> {args.target}, "
          f"{len(args.symbol_list)} symbols, {len(args.keys)} API keys", flush=True)
    meter = report.CpuMeter(args.pids)
    own = report.self_cpu()
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()
    scraper = stack_metrics.Scraper(dict(args.metrics_url)).start() if args.metrics_url else None
    elapsed = uvloop.run(run.execute())
    cpu = meter.stop()
    result = run.summary(elapsed, cpu, report.self_cpu() - own)
    if scraper is not None:
        snapshots = scraper.stop()
        result["stack_metrics"] = stack_metrics.series(snapshots)
        result["stack_hops"] = stack_metrics.hops(snapshots)
        if args.metrics_plot and result["stack_metrics"]:
            stack_metrics.plot(args.metrics_plot, result["stack_metrics"], f"{load}: the matching shards' group commits")
    result["durability"] = None
    if args.db_url:
        try:
            result["durability"] = durability.check(args.db_url, run.acked).as_dict()
        except durability.CheckFailed as error:
            print(f"loadgen: {error}", file=sys.stderr, flush=True)
            result["durability_error"] = str(error)
    report.write_json(result, args.report)
    if args.plot:
        report.plot(args.plot, {name: report.percentile_curve(h) for name, h in run.histograms.items()},
                    # Whole seconds only: the last bucket holds just the calls in flight at the deadline.
                    result["orders_per_second"]["acked"][:max(int(args.duration), 1)],
                    f"{load}, {result['orders_per_s']:.0f} orders/s")
    for line in report.text_lines(result):
        print(line)
    for hop, values in (result.get("stack_hops") or {}).items():
        print(f"stack {hop}: " + "  ".join(f"{name} {value:g}" for name, value in values.items()))
    print(f"report: {args.report}  plot: {args.plot or '(none)'}"
          + (f"  stack metrics: {args.metrics_plot}" if scraper is not None and args.metrics_plot else ""))
    failed = []
    if result["durability"] and (result["durability"]["lost"] or result["durability"]["inconsistent"]):
        failed.append("acknowledged orders lost or inconsistent")
    if result.get("durability_error"):
        failed.append(result["durability_error"])
    if result["errors"]["rate"] > args.max_error_rate:
        failed.append(f"error rate {result['errors']['rate']:.4%} above {args.max_error_rate:.4%}")
    if result["calls"] == 0:
        failed.append("no call completed")
    if result["open_loop"] and result["open_loop"]["dropped"]:
        print(f"WARNING: {result['open_loop']['dropped']} calls dropped (--max-in-flight {args.max_in_flight} "
              f"reached): the stack did not keep up with {args.rate:g} calls/s", file=sys.stderr)
    for reason in failed:
        print(f"FAILED: {reason}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
