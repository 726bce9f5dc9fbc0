"""Private PostgreSQL and Redis servers for tests and the local stack.

Never assume a default port is free or a server is running: each server gets a free
port and its own data directory. Set BOURSE_TEST_PG_URL / BOURSE_TEST_REDIS_URL to
use a running server instead (its databases are created if missing).
PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def wait_serving(address: str, process: subprocess.Popen, log_path: str | os.PathLike | None = None,
                 timeout: float = 60.0, ca_file: str | os.PathLike | None = None) -> None:
    """Waits until the gRPC server `process` at `address` reports SERVING (grpc.health.v1);
    over TLS trusting `ca_file` when given.

    Raises RuntimeError with the end of its log if it exits, TimeoutError if it is slow.
    """
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    def log_tail() -> str:
        try:
            with open(log_path, errors="replace") as log:
                return "\n".join(log.read().splitlines()[-15:])
        except (OSError, TypeError):
            return "(no log)"

    deadline = time.monotonic() + timeout
    if ca_file is None:
        channel = grpc.insecure_channel(address)
    else:
        with open(ca_file, "rb") as ca:
            channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(ca.read()))
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{address}: exited with {process.returncode}; its log ends:\n{log_tail()}")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"{address} not SERVING after {timeout}s; its log ends:\n{log_tail()}")


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found: run `make setup`")
    return found[-1]


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


class StartedWithin:
    """`with X(...) as x:` starts x (stopping what did start if that fails) and stops it
    at the end; for classes with start() and stop()."""

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class Postgres:
    """A private PostgreSQL cluster; `url(db)` gives a SQLAlchemy/psycopg URL."""

    port: int = 0
    datadir: str = ""
    external_url: str | None = None
    # More server settings, "name=value" separated by spaces, after the defaults; also
    # read from BOURSE_PG_SETTINGS (these come last).
    settings: str = ""
    _owned_dir: str | None = field(default=None, repr=False)

    def start(self, databases: list[str]) -> Postgres:
        if self.external_url:
            self._create_databases(databases)
            return self
        self.port = self.port or free_port()
        # Under /tmp, not $TMPDIR: the postgres user must be able to reach it.
        base = tempfile.mkdtemp(prefix="bourse-pg-", dir="/tmp")
        self._owned_dir = base
        self.datadir = os.path.join(base, "data")
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(base, pw.pw_uid, pw.pw_gid)
        initdb = subprocess.run(
            _as_postgres([_pg_bin("initdb"), "-D", self.datadir, "-A", "trust", "-U", "postgres", "-E", "UTF8"]),
            capture_output=True, text=True,
        )
        if initdb.returncode != 0:
            hint = " (inside Bazel's sandbox runuser cannot switch users: tag the test no-sandbox)" \
                if "cannot set groups" in initdb.stderr else ""
            raise RuntimeError(f"initdb failed{hint}: {initdb.stderr.strip()}")
        settings = f"{self.settings} {os.environ.get('BOURSE_PG_SETTINGS', '')}".split()
        options = (
            f"-p {self.port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=on "
            "-c synchronous_commit=on -c max_connections=200 -c shared_buffers=128MB"
        ) + "".join(f" -c {setting}" for setting in settings)
        self._options = options
        self._base = base
        self._pg_ctl_start()
        self._create_databases(databases)
        return self

    def _pg_ctl_start(self) -> None:
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", self.datadir, "-o", self._options, "-l",
                          os.path.join(self._base, "log"), "-w", "-t", "60", "start"]),
            check=True, capture_output=True,
        )

    def restart(self, timeout: float = 30.0) -> None:
        """Starts the cluster again after a crash (PostgreSQL runs its crash recovery).

        After a SIGKILL of the postmaster its backends linger until they notice, and
        hold the shared memory a new postmaster needs: retry until they are gone.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._pg_ctl_start()
                return
            except subprocess.CalledProcessError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)

    def _admin_url(self) -> str:
        return self.external_url or f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _create_databases(self, databases: list[str]) -> None:
        import psycopg

        with psycopg.connect(self._admin_url(), autocommit=True) as conn:
            existing = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
            for db in databases:
                if db not in existing:
                    conn.execute(f'CREATE DATABASE "{db}"')

    def url(self, database: str, driver: str = "postgresql+psycopg", socket: bool = False) -> str:
        """`socket`: through the cluster's Unix socket rather than loopback TCP (our own
        cluster only). Not the default: side by side (services/matching/bench_transport.py),
        a shard's group commits cost the same CPU either way."""
        if socket and not self.external_url:
            return f"{driver}://postgres@/{database}?host={self._base}&port={self.port}"
        base = self._admin_url().rsplit("/", 1)[0]
        return f"{base}/{database}".replace("postgresql://", driver + "://", 1)

    def pid(self) -> int | None:
        try:
            with open(os.path.join(self.datadir, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        if self.external_url or not self._owned_dir:
            return
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", self.datadir, "-m", "fast", "-w", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(self._owned_dir, ignore_errors=True)
        self._owned_dir = None


@dataclass
class Redis:
    port: int = 0
    external_url: str | None = None
    process: subprocess.Popen | None = None
    _dir: str | None = None

    def start(self) -> Redis:
        if self.external_url:
            return self
        self.port = self.port or free_port()
        self._dir = self._dir or tempfile.mkdtemp(prefix="bourse-redis-")
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self._dir, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C reaches the supervisor, which stops us in order
        )
        wait_for_port(self.port)
        return self

    @property
    def url(self) -> str:
        return self.external_url or f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def postgres_from_env() -> Postgres:
    return Postgres(external_url=os.environ.get("BOURSE_TEST_PG_URL") or None)


def redis_from_env() -> Redis:
    return Redis(external_url=os.environ.get("BOURSE_TEST_REDIS_URL") or None)


@contextlib.contextmanager
def running_redis():
    """A Redis for a test: BOURSE_TEST_REDIS_URL's when set, else a private one, stopped after."""
    server = redis_from_env().start()
    try:
        yield server
    finally:
        server.stop()
