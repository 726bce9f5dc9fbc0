"""Benchmark: the whole stack against its floors, same load, side by side (issue 8).

    bazel run //loadgen:floor -- --duration 15 --rounds 2 --clients 40

Three variants, each behind the same generated Envoy (two replicas, LEAST_REQUEST,
health checks) and driven by the same load generator (python -m loadgen.main):
- echo: two OrderService replicas that answer at once (loadgen/floor_servers.py);
- relay: two replicas that batch every call onto one stream to a backend process that
  decodes and answers each command (one batched Python hop, no engine, no database);
- journal: the relay, whose backend first makes each command durable as the shards do
  and nothing more: a group commit per shard of the journal rows alone, with the shards'
  own statement, on PostgreSQL with three databases (no engine, no orders or trades
  tables, no Redis). The floor of any design whose ack waits for a committed journal;
- stack: the real stack, 3 shards (PostgreSQL, Redis, persistence, matching, order).
The variants alternate within a round (reversed on odd rounds) so drift on the shared
machine hits all of them. Prints orders/s, submit p50/p99, CPU microseconds per order
per kind of process, lost orders (stack only: the floors store nothing), the ratios,
and issue 8's targets for the stack against the relay; writes everything to --report.

--setting KEY=VALUE (repeatable) goes into every server's environment (the stack's
services and the floor servers alike). --ab-setting KEY=VALUE (repeatable) adds the
variant `stack+ab`: the stack with those settings too, run beside the plain stack in
every round, with the ratio of each round's pair (metrics on vs off:
--variants stack --ab-setting BOURSE_METRICS_ADDR=127.0.0.1:0). --sessions S --window W
loads each variant through S order-entry sessions of W commands in flight instead of
unary clients (the stream floors: --sessions 4 --window 1000 --variants echo,journal,stack).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from infra.envoy.config import dumps, render
from infra.local.servers import Postgres, StartedWithin, free_port, wait_serving
from infra.local.stack import DEMO_KEYS, Stack, envoy_command
from loadgen.compare_shards import per_process_us, settings_of
from services.common.config import DEFAULT_SYMBOLS

VARIANTS = ("echo", "relay", "journal", "stack")
AB = "stack+ab"  # the stack with --ab-setting
STACK_RANGES = "A-G,H-O,P-Z"
REPLICAS = 2


class Floor(StartedWithin):
    """The echo or relay servers behind Envoy, started and stopped like the stack
    (infra/local/stack.py): free ports, health-checked, logs in `log_dir`."""

    def __init__(self, kind: str, service_env: dict[str, str], log_dir: Path):
        self.kind = kind
        self.service_env = service_env
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen] = {}
        self.postgres: Postgres | None = None

    def env(self) -> dict[str, str]:
        return dict(os.environ,
                    # Real paths: a later build in another configuration re-points bazel-bin.
                    PYTHONPATH=os.pathsep.join(os.path.realpath(p) for p in sys.path if p),
                    PYTHONUNBUFFERED="1", BOURSE_SYMBOLS=DEFAULT_SYMBOLS, BOURSE_DRAIN_MS="500",
                    **self.service_env)

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        extra = []
        if self.kind in ("relay", "journal"):
            backend = f"127.0.0.1:{free_port()}"
            self._serve("relay_backend", "relay-back", backend, *self._journal())
            extra = ["--backend", backend]
        mode = "echo" if self.kind == "echo" else "relay-front"
        fronts = [f"127.0.0.1:{free_port()}" for _ in range(REPLICAS)]
        for index, address in enumerate(fronts):
            self._serve(f"order-{index}", mode, address, "--node", str(index), *extra)
        self._start_envoy(fronts)

    def _journal(self) -> list[str]:
        """The journal variant's databases, migrated as the stack's are: the backend's flags."""
        if self.kind != "journal":
            return []
        names = [f"bourse_shard{i}" for i in range(len(STACK_RANGES.split(",")))]
        self.postgres = Postgres().start(names)
        urls = [self.postgres.url(name, driver="postgresql") for name in names]
        subprocess.run([sys.executable, "-m", "services.persistence.migrate"], check=True, capture_output=True,
                       env=dict(self.env(), BOURSE_DB_URLS=",".join(self.postgres.url(n) for n in names)))
        return ["--db-urls", ",".join(urls), "--ranges", STACK_RANGES]

    def _serve(self, name: str, mode: str, address: str, *args: str) -> None:
        command = [sys.executable, "-m", "loadgen.floor_servers", mode, "--address", address, *args]
        self.processes[name] = self._popen(name, command, self.env())
        wait_serving(address, self.processes[name], self.log_dir / f"{name}.log")

    def _popen(self, name: str, command: list[str], env: dict[str, str] | None) -> subprocess.Popen:
        with open(self.log_dir / f"{name}.log", "ab") as log:
            return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def _start_envoy(self, fronts: list[str]) -> None:
        # The same config and flags as Stack._start_envoy, so Envoy costs the same.
        self.envoy_port, admin_port = free_port(), free_port()
        backends = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in fronts]
        config = self.log_dir / "envoy.json"
        config.write_text(dumps(render(self.envoy_port, admin_port, backends, None, listen_host="127.0.0.1")))
        # Envoy dies with its parent (PR_SET_PDEATHSIG): this process supervises it.
        self.processes["envoy"] = self._popen("envoy", envoy_command(config, self.service_env), None)
        wait_serving(self.target, self.processes["envoy"], self.log_dir / "envoy.log")

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.envoy_port}"

    def pids(self) -> dict[str, int]:
        pids = {name: popen.pid for name, popen in self.processes.items()}
        if self.postgres is not None and self.postgres.pid():
            pids["postgres"] = self.postgres.pid()
        return pids

    def stop(self) -> None:
        for popen in reversed(self.processes.values()):  # front to back, as the stack stops
            if popen.poll() is None:
                popen.send_signal(signal.SIGTERM)
                try:
                    popen.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    popen.kill()
                    popen.wait()
        self.processes.clear()
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None


def load(target: str, pids: dict[str, int], db_urls: list[str], env: dict[str, str], args, report: Path,
         extra: tuple[str, ...] = ()) -> dict:
    """Runs the load generator as compare_shards.run_once does (with `extra` flags); its JSON report."""
    command = [sys.executable, "-m", "loadgen.main", "--target", target, "--clients", str(args.clients),
               "--duration", str(args.duration), "--report", str(report), "--plot", "", "--no-progress",
               "--api-keys", ",".join(DEMO_KEYS), "--seed", "7", "--rate", str(args.rate), *extra]
    for url in db_urls:
        command += ["--db-url", url]
    for name, pid in pids.items():
        command += ["--pid", f"{name}={pid}"]
    output = report.with_suffix(".log")
    with open(output, "wb") as log:
        code = subprocess.run(command, check=False, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    if code != 0:
        tail = "\n".join(output.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"the load generator failed with {code}; its output ends:\n{tail}")
    return json.loads(report.read_text())


def run_once(variant: str, settings: dict[str, str], args, workdir: Path, extra: tuple[str, ...] = (),
             hops: bool = False, replicas: int = REPLICAS) -> dict:
    """One load generator run (`extra`: more of its flags) against a fresh stack or floor.
    `hops`: the stack serves /metrics and the report has its "stack_hops" (stack_metrics.hops).
    `replicas`: the stack's order replicas behind Envoy (the floors always have REPLICAS)."""
    report = workdir / f"{variant}-{len(list(workdir.glob('*.json')))}.json"
    if variant in ("stack", AB):
        with Stack(shard_ranges=STACK_RANGES, order_replicas=replicas, service_env=settings, metrics=hops) as stack:
            scraped = [flag for name, url in stack.metrics_addresses().items() if name != "envoy"
                       for flag in ("--metrics-url", f"{name}={url}")]
            if scraped:
                extra = (*extra, *scraped, "--metrics-plot", "")
            return load(stack.target, stack.pids(), stack.db_urls(driver="postgresql"), stack.env(), args, report,
                        extra)
    with Floor(variant, settings, workdir / f"{report.stem}-logs") as floor:
        return load(floor.target, floor.pids(), [], floor.env(), args, report, extra)


def summarize(runs: list[dict]) -> dict:
    """Medians over the rounds; CPU per order by kind of process, the loadgen included."""
    kinds: dict[str, list[float]] = {}
    for run in runs:
        us = per_process_us(run)
        us["loadgen"] = run["loadgen_cpu_s"] * 1e6 / max(run["orders_acked"], 1)
        for kind, value in us.items():
            kinds.setdefault(kind, []).append(value)
    checked = [r["durability"] for r in runs if r.get("durability")]
    return {
        "orders_per_s": statistics.median(r["orders_per_s"] for r in runs),
        "p50_ms": statistics.median(r["latency"]["submit"]["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["latency"]["submit"]["p99_ms"] for r in runs),
        "cpu_us_per_order": {k: round(statistics.median(v), 1) for k, v in sorted(kinds.items())},
        # The servers' processes only (the loadgen is a row of its own).
        "cpu_us_per_order_total": statistics.median(r["cpu"]["us_per_order"] or 0 for r in runs),
        # None: not checked (the floors store nothing).
        "lost": sum(d["lost"] for d in checked) if checked else None,
        "inconsistent": sum(d["inconsistent"] for d in checked) if checked else None,
    }


def ratios(summary: dict[str, dict]) -> dict[str, dict[str, float]]:
    pairs = [(AB, "stack"), ("stack", "echo"), ("stack", "relay"), ("stack", "journal"), ("journal", "relay"),
             ("relay", "echo")]
    return {f"{a}/{b}": {"orders_per_s": summary[a]["orders_per_s"] / summary[b]["orders_per_s"],
                         "cpu_per_order": summary[a]["cpu_us_per_order_total"] / summary[b]["cpu_us_per_order_total"]}
            for a, b in pairs if a in summary and b in summary}


def targets(summary: dict[str, dict]) -> list[dict]:
    """Issue 8's targets for the stack, measured against the relay."""
    if "stack" not in summary or "relay" not in summary:
        return []
    stack, relay = summary["stack"], summary["relay"]
    throughput, p99_limit = stack["orders_per_s"] / relay["orders_per_s"], 2 * relay["p99_ms"] + 10
    return [{"target": "stack >= 0.8x relay orders/s", "measured": f"{throughput:.2f}x",
             "met": throughput >= 0.8},
            {"target": "stack p99 <= 2x relay p99 + 10 ms",
             "measured": f"{stack['p99_ms']:.1f} ms vs limit {p99_limit:.1f} ms", "met": stack["p99_ms"] <= p99_limit}]


def print_table(summary: dict[str, dict], ratio: dict, goals: list[dict]) -> None:
    names = list(summary)

    def row(label: str, values) -> None:
        print(f"{label:24}" + "".join(f"{v:>10}" for v in values))

    row("", names)
    row("orders/s", [f"{s['orders_per_s']:.0f}" for s in summary.values()])
    row("submit p50 ms", [f"{s['p50_ms']:.1f}" for s in summary.values()])
    row("submit p99 ms", [f"{s['p99_ms']:.1f}" for s in summary.values()])
    row("CPU us/order, servers", [f"{s['cpu_us_per_order_total']:.0f}" for s in summary.values()])
    kinds = sorted({k for s in summary.values() for k in s["cpu_us_per_order"]} - {"loadgen"}) + ["loadgen"]
    for kind in kinds:
        row("  " + kind, [f"{s['cpu_us_per_order'][kind]:.0f}" if kind in s["cpu_us_per_order"] else "-"
                          for s in summary.values()])
    row("lost", ["-" if s["lost"] is None else str(s["lost"]) for s in summary.values()])
    for pair, values in ratio.items():
        print(f"{pair:24}orders/s {values['orders_per_s']:.2f}x   CPU/order {values['cpu_per_order']:.2f}x")
    for goal in goals:
        print(f"target {goal['target']}: {goal['measured']}  {'PASS' if goal['met'] else 'MISS'}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=float, default=0, help="open loop at this many calls/s (0: closed loop)")
    parser.add_argument("--sessions", type=int, default=0,
                        help="order-entry sessions instead of unary clients (0: --clients unary clients)")
    parser.add_argument("--window", type=int, default=1000, help="with --sessions: commands in flight per session")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="which to run, comma separated")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                        help="an environment setting for every server (repeatable)")
    parser.add_argument("--ab-setting", action="append", default=[], metavar="KEY=VALUE",
                        help="run the stack with these settings too, beside the plain stack (repeatable)")
    parser.add_argument("--report", default=os.path.join(os.environ.get("BUILD_WORKSPACE_DIRECTORY", "."),
                                                         "reports", "floor.json"))
    args = parser.parse_args(argv)
    args.variant_list = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not args.variant_list or set(args.variant_list) - set(VARIANTS):
        parser.error(f"--variants takes some of {','.join(VARIANTS)}")
    args.settings = settings_of(parser, args.setting)
    args.ab_settings = settings_of(parser, args.ab_setting)
    if args.ab_settings:
        if "stack" not in args.variant_list:
            parser.error("--ab-setting compares against the stack: --variants must include stack")
        args.variant_list.append(AB)
    return args


SERVICES, CONTROLS = ("order", "matching", "persistence"), ("envoy", "postgres", "redis")


def paired(results: dict[str, list[dict]]) -> dict | None:
    """stack+ab against the stack of the same round: each round's ratios (CPU per order of
    all servers; of the Python services, which read the settings; of the controls, Envoy,
    PostgreSQL and Redis, which do not, so their ratio is the machine's drift between the
    two runs; and the services' over the controls'), and their medians."""
    if AB not in results:
        return None

    def cpu(run: dict, kinds) -> float:
        return sum(us for kind, us in per_process_us(run).items() if kind in kinds)

    rounds = []
    for ab, plain in zip(results[AB], results["stack"]):
        services, controls = cpu(ab, SERVICES) / cpu(plain, SERVICES), cpu(ab, CONTROLS) / cpu(plain, CONTROLS)
        rounds.append({"orders_per_s": ab["orders_per_s"] / plain["orders_per_s"],
                       "cpu_per_order": ab["cpu"]["us_per_order"] / plain["cpu"]["us_per_order"],
                       "services": services, "controls": controls, "services_over_controls": services / controls})
    return {"rounds": rounds, **{key: statistics.median(r[key] for r in rounds) for key in rounds[0]}}


def main(argv=None) -> int:
    args = parse_args(argv)
    results: dict[str, list[dict]] = {name: [] for name in args.variant_list}
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            order = args.variant_list[::-1] if round_index % 2 else args.variant_list
            stream = ("--sessions", str(args.sessions), "--window", str(args.window)) if args.sessions else ()
            for variant in order:
                settings = {**args.settings, **args.ab_settings} if variant == AB else args.settings
                result = run_once(variant, settings, args, Path(tmp), stream)
                results[variant].append(result)
                lost = result["durability"]["lost"] if result.get("durability") else "-"
                print(f"round {round_index + 1} {variant}: {result['orders_per_s']:.0f} orders/s, "
                      f"p99 {result['latency']['submit']['p99_ms']:.1f} ms, lost {lost}", flush=True)
    summary = {name: summarize(runs) for name, runs in results.items()}
    ratio, goals = ratios(summary), targets(summary)
    print_table(summary, ratio, goals)
    pairs = paired(results)
    if pairs:
        print(f"{AB}/stack, paired by round (medians): orders/s {pairs['orders_per_s']:.3f}x, CPU/order of all "
              f"servers {pairs['cpu_per_order']:.3f}x, of the services {pairs['services']:.3f}x, of the controls "
              f"{pairs['controls']:.3f}x, services over controls {pairs['services_over_controls']:.3f}x")
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    report = {"args": vars(args), "summary": summary, "ratios": ratio, "paired": pairs,
              "targets": goals, "runs": results}
    Path(args.report).write_text(json.dumps(report, indent=2))
    print(f"report: {args.report}")
    # Missed targets are the news, not a failure; a lost or inconsistent order is.
    return 1 if any(s["lost"] or s["inconsistent"] for s in summary.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
