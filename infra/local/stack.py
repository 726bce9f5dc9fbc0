"""The whole exchange on one machine: PostgreSQL (one database per shard), Redis, the
persistence service, the matching shards (one process for all, or one each), order-service replicas, Envoy.

    stack demo [--duration 60 --clients 40]   start, run the load generator, report, stop
    stack up                                  start and keep running until Ctrl-C, restarting
                                              whatever stops (infra/local/supervisor.py)

Used by the end-to-end tests too (`Stack` is a context manager). Every port is free
and picked at start; every data directory is private and removed at stop.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from infra.envoy.binary import envoy_binary
from infra.envoy.config import dumps, render
from infra.local.servers import Postgres, Redis, StartedWithin, free_port, wait_serving
from infra.local.supervisor import Supervisor
from infra.local.tls import local_tls
from services.common.config import DEFAULT_SHARD_RANGES, DEFAULT_SYMBOLS
from services.persistence.api_keys import seed_keys

# Where `stack up` tells the admin command (infra/admin) how to reach the stack.
ENDPOINTS_FILE = Path(".stack/endpoints.json")
DEMO_KEYS = {"demo-key-alice": 1, "demo-key-bob": 2, "demo-key-carol": 3, "demo-key-dave": 4}


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    address: str | None = None  # gRPC host:port, health-checked at start
    module: str | None = None  # python -m module (services; restartable)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid


@dataclass
class Stack(StartedWithin):
    shard_ranges: str = DEFAULT_SHARD_RANGES
    order_replicas: int = 2
    symbols: str = DEFAULT_SYMBOLS
    api_keys: dict[str, int] = field(default_factory=lambda: dict(DEMO_KEYS))
    log_dir: str | None = None
    envoy_port: int = 0
    quiet: bool = True
    # Set: clients reach Envoy over TLS, trusting `ca_file`, a local CA made (once) in
    # this directory (infra/local/tls.py). None: plaintext (h2c).
    tls_dir: str | None = None
    # Extra settings for every service (e.g. BOURSE_SNAPSHOT_EVERY).
    service_env: dict[str, str] = field(default_factory=dict)
    # How many processes serve the matching shards (matching-0..): 1 runs every shard in
    # one process, which on a small machine spares a message per shard on the internal
    # hop; len(shards) runs one process per shard, as Kubernetes does (one pod each).
    matching_processes: int = 1
    # Each service serves Prometheus metrics on a port of its own (BOURSE_METRICS_ADDR,
    # services/common/metrics.py); `metrics_addresses()` lists them.
    metrics: bool = False

    def __post_init__(self):
        self.processes: list[Process] = []
        self.postgres = Postgres(settings=self.service_env.get("BOURSE_PG_SETTINGS", ""))
        self.redis = Redis()
        self.shards = len(self.shard_ranges.split(","))
        # Under Bazel the logs are kept as test outputs; otherwise a private dir that
        # goes away at stop unless the caller chose where they go.
        self._owned_logs = self.log_dir is None and "TEST_UNDECLARED_OUTPUTS_DIR" not in os.environ
        if self.log_dir is None:
            outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
            self.log_dir = os.path.join(outputs, "stack-logs") if outputs else tempfile.mkdtemp(prefix="bourse-logs-")
        Path(self.log_dir).mkdir(parents=True, exist_ok=True)

    # ----- lifecycle (entered and left as StartedWithin says)

    def db_names(self) -> list[str]:
        return [f"bourse_shard{i}" for i in range(self.shards)]

    def db_urls(self, driver: str = "postgresql+psycopg") -> list[str]:
        return [self.postgres.url(db, driver=driver) for db in self.db_names()]

    def replica_env(self) -> dict[str, str]:
        """An order replica's settings beyond env(). A lone replica sends two batches at a
        time to matching (unless BOURSE_BATCHES_IN_FLIGHT says otherwise), as two replicas
        with one each do: the next batch then waits at the shard, not for the previous one's
        answer to come back. Order-entry sessions at half the maximum (half_rate, 4 rounds
        side by side): p99 0.79-1.01x, p50 0.90-0.98x, the maximum 0.96-1.01x and its CPU per
        order the same; at half, 13-18% more CPU per order. With two replicas (unary `make
        demo`, 2 rounds) two each cost 8-18% more CPU per order and a worse p99: they keep one."""
        configured = "BOURSE_BATCHES_IN_FLIGHT" in os.environ or "BOURSE_BATCHES_IN_FLIGHT" in self.service_env
        return {"BOURSE_BATCHES_IN_FLIGHT": "2"} if self.order_replicas == 1 and not configured else {}

    def env(self, **extra: str) -> dict[str, str]:
        return dict(
            os.environ,
            # Real paths: a later build in another configuration re-points bazel-bin.
            PYTHONPATH=os.pathsep.join(os.path.realpath(p) for p in sys.path if p),
            PYTHONUNBUFFERED="1",
            BOURSE_SYMBOLS=self.symbols,
            BOURSE_SHARD_RANGES=self.shard_ranges,
            BOURSE_DB_URLS=",".join(self.db_urls()),
            BOURSE_REDIS_URL=self.redis.url,
            BOURSE_DRAIN_MS="500",
            **{**self.service_env, **extra},
        )

    def start(self) -> None:
        self._say("starting PostgreSQL and Redis")
        self.postgres.start(self.db_names())
        self.redis.start()
        subprocess.run([sys.executable, "-m", "services.persistence.migrate"], env=self.env(), check=True,
                       capture_output=True)
        # The demo keys exist here only (make demo, make up, the tests), as data like any key.
        seed_keys(self.db_urls()[0], self.api_keys, label="demo")
        persistence = self.persistence_address = f"127.0.0.1:{free_port()}"
        self._spawn("persistence", "services.persistence.main", persistence, BOURSE_PERSISTENCE_ADDR=persistence)
        hosts = max(1, min(self.matching_processes, self.shards))
        addresses = [f"127.0.0.1:{free_port()}" for _ in range(hosts)]
        # Shard i is served by process i % hosts; every shard's address is its process's.
        matching = self.matching_addresses = [addresses[i % hosts] for i in range(self.shards)]
        for host, address in enumerate(addresses):
            shards = ",".join(str(i) for i in range(self.shards) if i % hosts == host)
            self._spawn(f"matching-{host}", "services.matching.main", address, BOURSE_SHARD_INDEX=shards,
                        BOURSE_MATCHING_ADDR=address, BOURSE_PERSISTENCE_ADDR=persistence)
        self.order_addresses = [f"127.0.0.1:{free_port()}" for _ in range(self.order_replicas)]
        for index, address in enumerate(self.order_addresses):
            self._spawn(f"order-{index}", "services.order.main", address, BOURSE_NODE_ID=str(index),
                        BOURSE_ORDER_ADDR=address, BOURSE_MATCHING_ADDRS=",".join(matching),
                        BOURSE_PERSISTENCE_ADDR=persistence, **self.replica_env())
        self._say("waiting for the services to be healthy")
        for process in self.processes:
            self._wait_healthy(process)
        self._start_envoy()
        self._say(f"ready: Envoy on {self.target}")

    def _spawn(self, name: str, module: str, address: str, **env: str) -> Process:
        if self.metrics:  # any free port, bound by the process itself: metrics_addresses() reads which
            env["BOURSE_METRICS_ADDR"] = "127.0.0.1:0"
        process = Process(name, self._popen(name, module, env), address, module, env)
        self.processes.append(process)
        return process

    def _popen(self, name: str, module: str, env: dict[str, str]) -> subprocess.Popen:
        with open(Path(self.log_dir) / f"{name}.log", "ab") as log:
            return subprocess.Popen([sys.executable, "-m", module], env=self.env(**env), stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def metrics_addresses(self) -> dict[str, str]:
        """Each service's /metrics URL (empty unless the stack runs with metrics)."""
        found = {}
        for process in self.processes:
            if "BOURSE_METRICS_ADDR" in process.env and (address := self._metrics_address(process.name)):
                found[process.name] = f"http://{address}/metrics"
        if found and getattr(self, "envoy_admin_port", None):  # Envoy's own, beside them
            found["envoy"] = f"http://127.0.0.1:{self.envoy_admin_port}/stats/prometheus"
        return found

    def _metrics_address(self, name: str) -> str | None:
        """The address a service's latest start logged for its /metrics (the "metrics" line)."""
        address = None
        with contextlib.suppress(OSError), open(Path(self.log_dir) / f"{name}.log", errors="replace") as log:
            for line in log:
                if '"event": "metrics"' in line:
                    with contextlib.suppress(ValueError):
                        address = json.loads(line).get("address", address)
        return address

    def process(self, name: str) -> Process:
        return next(p for p in self.processes if p.name == name)

    def matching_process_of(self, shard: int) -> str:
        """The name of the process serving matching shard `shard`."""
        return f"matching-{shard % max(1, min(self.matching_processes, self.shards))}"

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kills a service (SIGKILL by default: no drain, no goodbye)."""
        process = self.process(name)
        process.popen.send_signal(sig)
        process.popen.wait(timeout=30)

    def restart(self, name: str, wait: bool = True) -> None:
        """Starts a killed service (or Envoy) again, same address and settings; waits
        until healthy."""
        process = self.process(name)
        if process.popen.poll() is None:
            raise RuntimeError(f"{name} is still running")
        if process.module is None:
            process.popen = self._popen_envoy()
        else:
            process.popen = self._popen(name, process.module, process.env)
        if wait:
            self._wait_healthy(process)

    def postgres_alive(self) -> bool:
        pid = self.postgres.pid()
        return pid is not None and _alive(pid)

    def redis_alive(self) -> bool:
        return self.redis.process is None or self.redis.process.poll() is None

    def kill_postgres(self, timeout: float = 30.0) -> None:
        """Kills the whole PostgreSQL server at once, as a power cut would: the postmaster
        and every backend and helper it started, so none can finish a commit afterwards.
        Returns once all are gone."""
        pid = self.postgres.pid()
        if not pid:
            return
        try:
            postmaster = psutil.Process(pid)
            if self.postgres.datadir not in postmaster.cmdline():
                return  # a stale postmaster.pid: the server is down already, the pid reused
            postmaster.suspend()  # SIGSTOP: it forks no new backend while we list them
            victims = [postmaster, *postmaster.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for process in victims:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        deadline = time.monotonic() + timeout
        while (alive := [p.pid for p in victims if _alive(p.pid)]) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive:
            raise TimeoutError(f"PostgreSQL processes {alive} still alive {timeout}s after SIGKILL")

    def restart_postgres(self) -> None:
        self.postgres.restart()

    def _wait_healthy(self, process: Process, timeout: float = 60.0) -> None:
        wait_serving(process.address, process.popen, Path(self.log_dir) / f"{process.name}.log", timeout,
                     ca_file=self.ca_file if process.name == "envoy" else None)

    @property
    def ca_file(self) -> str | None:
        """What a client trusts to reach Envoy over TLS; None in plaintext."""
        return str(local_tls(self.tls_dir).ca) if self.tls_dir else None

    def _start_envoy(self) -> None:
        self.envoy_port = self.envoy_port or free_port()
        self.envoy_admin_port = free_port()
        backends = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in self.order_addresses]
        tls = None
        if self.tls_dir:
            files = local_tls(self.tls_dir)
            tls = (str(files.certificate), str(files.key))
        self._envoy_config = Path(self.log_dir) / "envoy.json"
        self._envoy_config.write_text(dumps(render(self.envoy_port, self.envoy_admin_port, backends, None,
                                                   listen_host="127.0.0.1", tls=tls)))
        self.processes.append(Process("envoy", self._popen_envoy(), f"127.0.0.1:{self.envoy_port}"))
        self._wait_healthy(self.processes[-1])

    def _popen_envoy(self) -> subprocess.Popen:
        with open(Path(self.log_dir) / "envoy.log", "ab") as log:
            # Envoy dies with its parent (PR_SET_PDEATHSIG): this process supervises it.
            return subprocess.Popen(envoy_command(self._envoy_config, self.service_env),
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.envoy_port}"

    def pids(self) -> dict[str, int]:
        pids = {p.name: p.pid for p in self.processes}
        if self.postgres.pid():
            pids["postgres"] = self.postgres.pid()
        if self.redis.process:
            pids["redis"] = self.redis.process.pid
        return pids

    def stop(self) -> None:
        # Front to back, so nothing is cut off mid-call: Envoy, order, matching, persistence.
        for process in reversed(self.processes):
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
                try:
                    process.popen.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.popen.kill()
                    process.popen.wait()
        self.processes.clear()
        self.redis.stop()
        self.postgres.stop()
        if self._owned_logs:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def _say(self, message: str) -> None:
        if not self.quiet:
            print(f"stack: {message}", flush=True)


def envoy_command(config: Path, settings: dict[str, str]) -> list[str]:
    """How the stack (and the floor benchmark, so that Envoy costs the same) starts Envoy;
    BOURSE_ENVOY_CONCURRENCY (in `settings`, else the environment; default 2) sets its
    worker threads."""
    workers = settings.get("BOURSE_ENVOY_CONCURRENCY") or os.environ.get("BOURSE_ENVOY_CONCURRENCY") or "2"
    return [envoy_binary(), "-c", str(config), "--log-level", "warn", "--concurrency", workers,
            "--disable-hot-restart"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (killed, not yet reaped by its parent) is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _demo(stack: Stack, args) -> int:
    report_dir = Path(args.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "loadgen.main", "--target", stack.target,
        "--clients", str(args.clients), "--duration", str(args.duration),
        "--report", str(report_dir / "loadgen.json"), "--plot", str(report_dir / "latency.png"),
        "--api-keys", ",".join(stack.api_keys),
    ]
    for url in stack.db_urls(driver="postgresql"):
        command += ["--db-url", url]
    for name, pid in stack.pids().items():
        command += ["--pid", f"{name}={pid}"]
    if args.no_progress:
        command.append("--no-progress")
    if args.sessions:  # stream mode: order-entry sessions instead of unary calls
        command += ["--sessions", str(args.sessions), "--window", str(args.window)]
    if args.rate:  # open loop at this many calls per second
        command += ["--rate", str(args.rate)]
    for name, url in stack.metrics_addresses().items():
        if name != "envoy":  # Envoy's are not bourse's metrics
            command += ["--metrics-url", f"{name}={url}"]
    command += ["--metrics-plot", str(report_dir / "stack_metrics.png")]
    return subprocess.run(command, env=stack.env()).returncode


def _up(stack: Stack) -> int:
    stopped = []
    signal.signal(signal.SIGTERM, lambda *_: stopped.append(1))
    endpoints = {"envoy": stack.target, "ca_file": stack.ca_file, "api_keys": stack.api_keys, "logs": stack.log_dir,
                 "postgres": stack.db_urls(driver="postgresql"), "redis": stack.redis.url,
                 "matching": stack.matching_addresses, "persistence": stack.persistence_address,
                 "metrics": stack.metrics_addresses(), "shard_ranges": stack.shard_ranges}
    ENDPOINTS_FILE.parent.mkdir(exist_ok=True)
    ENDPOINTS_FILE.write_text(json.dumps(endpoints, indent=2))
    try:
        print(json.dumps(endpoints, indent=2))
        print("operations: make shards, make snapshot, make halt SYMBOL=..., make resume SYMBOL=... (see README)")
        security = f"-cacert {stack.ca_file}" if stack.ca_file else "-plaintext"
        print(f"try: grpcurl {security} -H 'authorization: Bearer demo-key-alice' {stack.target} list")
        print("Ctrl-C stops the stack; anything else that stops is restarted", flush=True)
        supervisor = Supervisor(stack, say=lambda line: print(line, file=sys.stderr, flush=True))
        while not stopped:
            supervisor.check()
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        ENDPOINTS_FILE.unlink(missing_ok=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["demo", "up"])
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--sessions", type=int, default=0,
                        help="demo in stream mode: this many order-entry sessions (0: unary clients)")
    parser.add_argument("--window", type=int, default=1000,
                        help="stream mode: commands in flight per session (the order service allows 1,000)")
    parser.add_argument("--rate", type=float, default=0, help="open loop: calls per second (0: closed loop)")
    parser.add_argument("--order-replicas", type=int, default=None,
                        help="default 2 (unary clients: each call costs a replica a core's share), or 1 in "
                             "stream mode: on 2 cores one replica carries the sessions at the same maximum, with "
                             "less CPU per order and a lower p99 (BENCHMARKS.md, fifteenth session)")
    parser.add_argument("--shard-ranges", default=DEFAULT_SHARD_RANGES)
    parser.add_argument("--matching-processes", type=int, default=1,
                        help="processes serving the shards (1: all in one; one per shard: as many as shards)")
    parser.add_argument("--envoy-port", type=int, default=0, help="default: a free port (up) / any (demo)")
    parser.add_argument("--report-dir", default=os.path.join(os.environ.get("BUILD_WORKSPACE_DIRECTORY", "."), "reports"))
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--no-metrics", action="store_true",
                        help="demo: the services serve no /metrics (and the report has no plot of them)")
    parser.add_argument("--plaintext", action="store_true",
                        help="up: clients reach Envoy without TLS (h2c); demo always runs so, as the original test")
    parser.add_argument("--tls-dir", default=str(ENDPOINTS_FILE.parent / "tls"),
                        help="up: where the local CA and Envoy's certificate are made, once")
    args = parser.parse_args(argv)
    if args.order_replicas is None:
        args.order_replicas = 1 if args.sessions else 2
    log_dir = os.path.join(args.report_dir, "logs")
    stack = Stack(shard_ranges=args.shard_ranges, order_replicas=args.order_replicas, log_dir=log_dir,
                  matching_processes=args.matching_processes,
                  envoy_port=args.envoy_port or (8080 if args.mode == "up" and _port_free(8080) else 0), quiet=False,
                  metrics=args.mode == "up" or not args.no_metrics,
                  tls_dir=None if args.mode == "demo" or args.plaintext else os.path.abspath(args.tls_dir))
    with stack:
        if args.mode == "demo":
            code = _demo(stack, args)
        else:
            code = _up(stack)
    print("stack: stopped; logs in", log_dir, flush=True)
    return code


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


if __name__ == "__main__":
    sys.exit(main())
