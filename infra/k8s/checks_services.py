"""Checks that each Python service, configured by its own code from exactly the
environment its pod gets, works in the cluster: nothing it needs is unset, no address
is left at its loopback default, it listens where its container and probes expect,
shard i is pod matching-i and every symbol has one shard, the order service's matching
and database addresses reach the right pods, every replica gets a node id, and grace
periods and startup probes cover the code's own drain and startup waits.
"""

from __future__ import annotations

from infra.k8s.cluster_model import (
    Manifests,
    container_ports,
    host_port,
    is_loopback,
    is_wildcard,
    pod_containers,
    pod_env,
    resolve,
    service_of,
    url_host,
    url_port,
)
from infra.k8s.service_code import (
    DRAIN_MARGIN_S,
    listed_symbols,
    read_anywhere,
    service_settings,
    service_variables,
    shard_map_of,
)


def check_services(m: Manifests) -> list[str]:
    """Each Python service's settings, by its own code, from its pod's environment."""
    problems: list[str] = []
    shard_counts = set()
    owners: dict[str, list[int]] = {}
    listed: tuple[str, ...] = ()
    for workload, pod_name, spec in m.pods():
        containers = {c["name"]: c for c in pod_containers(spec)}
        for container in containers.values():
            service = service_of(container)
            if service is None:
                continue
            where = f"pod {pod_name} container {container['name']} ({service})"
            env = pod_env(m, container, pod_name, problems)
            reads = service_variables(service)
            for variable, has_default in sorted(reads.items()):
                if not has_default and not env.get(variable):
                    problems.append(f"{where}: {variable} is read without a default but not set")
            try:
                settings = service_settings(service, env)
            except (SystemExit, ValueError) as e:
                problems.append(f"{where}: the service refuses its settings: {e}")
                continue
            for variable in sorted(v for v in env if v.startswith("BOURSE_")):
                if not read_anywhere(variable):
                    problems.append(f"{where}: {variable} is set but no service reads it")
            problems += _check_addresses(m, where, service, settings, container, spec)
            startup = container.get("startupProbe")
            wait = getattr(settings, "startup_timeout_s", None) or getattr(settings, "startup_wait_seconds", None)
            if startup and wait and startup["periodSeconds"] * startup["failureThreshold"] < wait + DRAIN_MARGIN_S:
                problems.append(f"{where}: startupProbe gives up after {startup['periodSeconds'] * startup['failureThreshold']} s,"
                                f" before the service's own startup wait of {wait:g} s")
            if service in ("persistence", "matching", "order"):
                minimum = 2 * settings.drain_seconds + DRAIN_MARGIN_S
                if spec.get("terminationGracePeriodSeconds", 30) < minimum:
                    problems.append(f"{where}: terminationGracePeriodSeconds {spec.get('terminationGracePeriodSeconds', 30)}"
                                    f" < {minimum:g} (2 x BOURSE_DRAIN_MS + {DRAIN_MARGIN_S} s)")
            if service == "matching":
                ordinal = int(pod_name.rpartition("-")[2])
                shard_map = shard_map_of(env)
                shard_counts.add((workload["spec"]["replicas"], len(shard_map)))
                if settings.shard_index != ordinal:
                    problems.append(f"{where}: shard index {settings.shard_index}, not its ordinal {ordinal}")
                listed = tuple(sorted(listed_symbols(env)))
                for symbol in settings.symbols:
                    owners.setdefault(symbol, []).append(settings.shard_index)
            if service == "order":
                problems += _check_order(m, where, settings, env, workload)
            if service in ("persistence", "migrate", "wait-schema"):
                problems += _check_databases(m, where, settings, env)
    for replicas, shards in shard_counts:
        if replicas != shards:
            problems.append(f"the matching StatefulSet runs {replicas} shards but BOURSE_SHARD_RANGES has {shards}")
    if not shard_counts:
        problems.append("no matching shard runs")
    for symbol in listed:
        if len(owners.get(symbol, [])) != 1:
            problems.append(f"symbol {symbol} is owned by matching shards {owners.get(symbol, [])}, not exactly one")
    return problems


def _check_addresses(m: Manifests, where: str, service: str, settings, container: dict, spec: dict) -> list[str]:
    problems = []
    for field in ("persistence_address", "redis_url", "matching_addresses", "db_urls"):
        values = getattr(settings, field, None)
        for value in [values] if isinstance(values, str) else (values or []):
            host = url_host(value) if "://" in value else host_port(value)[0]
            if is_loopback(host):
                problems.append(f"{where}: {field} is {value}: loopback, the code's default, not set for the cluster")
    if service in ("persistence", "matching", "order"):
        host, port = host_port(settings.address)
        if not is_wildcard(host):
            problems.append(f"{where}: listens on {settings.address}, not on every interface")
        if port not in container_ports(container).values():
            problems.append(f"{where}: listens on port {port}, which the container does not expose")
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            handler = container.get(kind, {}).get("grpc") or container.get(kind, {}).get("tcpSocket")
            if handler and container_ports(container).get(handler["port"]) != port:
                problems.append(f"{where}: {kind} probes port {handler['port']}, the service listens on {port}")
    if service in ("matching", "order"):
        problems += [p for p in _resolve_problems(m, settings.persistence_address, where, "persistence address")]
        redis_host, redis_port = url_host(settings.redis_url), url_port(settings.redis_url, 6379)
        problems += _resolve_problems(m, f"{redis_host}:{redis_port}", where, "Redis")
    return problems


def _resolve_problems(m: Manifests, address: str, where: str, what: str) -> list[str]:
    problems: list[str] = []
    resolve(m, address, problems, f"{where}: {what}")
    return problems


def _check_order(m: Manifests, where: str, settings, env: dict, workload: dict) -> list[str]:
    problems: list[str] = []
    for shard, address in enumerate(settings.matching_addresses):
        pods = resolve(m, address, problems, f"{where}: BOURSE_MATCHING_ADDRS[{shard}]")
        for _, pod_name, spec in pods:
            container = spec["containers"][0]
            if service_of(container) != "matching":
                problems.append(f"{where}: BOURSE_MATCHING_ADDRS[{shard}] {address} reaches {pod_name}, not a matching shard")
                continue
            index = service_settings("matching", pod_env(m, container, pod_name, problems)).shard_index
            if index != shard:
                problems.append(f"{where}: BOURSE_MATCHING_ADDRS[{shard}] {address} reaches {pod_name}, shard {index}")
        if len(pods) > 1:
            problems.append(f"{where}: BOURSE_MATCHING_ADDRS[{shard}] {address} reaches {len(pods)} pods, not one shard")
    # Every replica the autoscaler may add gets a valid node id.
    most = max([workload["spec"].get("replicas", 1)] + [
        h["spec"]["maxReplicas"] for h in m.of_kind("HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["name"] == workload["metadata"]["name"]])
    if workload["kind"] != "StatefulSet":
        problems.append(f"{where}: order replicas need unique BOURSE_NODE_ID: run them as a StatefulSet (ordinals)")
    else:
        name = workload["metadata"]["name"]
        for ordinal in (0, most - 1):
            try:
                service_settings("order", {**env, "POD_NAME": f"{name}-{ordinal}"})
            except SystemExit as e:
                problems.append(f"{where}: replica {ordinal} (HPA maximum {most}) is refused: {e}")
    return problems


def _check_databases(m: Manifests, where: str, settings, env: dict) -> list[str]:
    from sqlalchemy.engine import make_url

    problems: list[str] = []
    servers = set()
    for index, url in enumerate(settings.db_urls):
        parsed = make_url(url)
        pods = resolve(m, f"{parsed.host}:{parsed.port or 5432}", problems, f"{where}: BOURSE_DB_URLS[{index}]")
        for _, pod_name, spec in pods:
            servers.add(pod_name)
            db_env = pod_env(m, spec["containers"][0], pod_name, problems)
            if (parsed.username, parsed.database) != (db_env.get("POSTGRES_USER"), db_env.get("POSTGRES_DB")):
                problems.append(f"{where}: BOURSE_DB_URLS[{index}] wants user/database {parsed.username}/"
                                f"{parsed.database}; {pod_name} creates {db_env.get('POSTGRES_USER')}/{db_env.get('POSTGRES_DB')}")
            password = parsed.password or env.get("PGPASSWORD")
            if password != db_env.get("POSTGRES_PASSWORD"):
                problems.append(f"{where}: BOURSE_DB_URLS[{index}]: the password is not {pod_name}'s POSTGRES_PASSWORD")
    if len(servers) != len(settings.db_urls):
        problems.append(f"{where}: {len(settings.db_urls)} database URLs reach {len(servers)} distinct servers")
    return problems
