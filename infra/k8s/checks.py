"""Consistency of rendered manifests with the services' own code.

`problems(objects)` runs every check on a list of Kubernetes objects (dicts, e.g. the
files of infra/k8s/base) and returns what is wrong, one sentence each, [] when nothing
is. The services' settings are computed by the services' code (Settings.from_env) from
exactly the environment each pod would get, the shard index and node id derived by
the image's entrypoint, so a setting the code needs and the pod lacks, an address that
reaches no Service or the wrong shard, or a probe on a port nobody listens on is found
here rather than in a cluster.
"""

from __future__ import annotations

import ast
import base64
import functools
import ipaddress
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from infra.k8s import entrypoint

PYTHON_SERVICES = ("persistence", "migrate", "wait-schema", "matching", "order")
MAX_NODE_ID = 511  # services/order/config.py: BOURSE_NODE_ID 0-511
DRAIN_MARGIN_S = 5  # beyond 2 x BOURSE_DRAIN_MS (services/common/server.py) before SIGKILL


class Manifests:
    def __init__(self, objects: list[dict]):
        self.objects = objects
        self.by_key = {(o["kind"], o["metadata"]["name"]): o for o in objects}

    def get(self, kind: str, name: str) -> dict | None:
        return self.by_key.get((kind, name))

    def of_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    def workloads(self) -> list[dict]:
        return [o for o in self.objects if o["kind"] in ("Deployment", "StatefulSet", "Job")]

    def pods(self) -> Iterator[tuple[dict, str, dict]]:
        """(workload, pod name, pod spec) for every pod a workload would run."""
        for workload in self.workloads():
            spec = workload["spec"]["template"]["spec"]
            name = workload["metadata"]["name"]
            if workload["kind"] == "StatefulSet":
                for ordinal in range(workload["spec"].get("replicas", 1)):
                    yield workload, f"{name}-{ordinal}", spec
            else:
                yield workload, f"{name}-7d9f8-x2x4z", spec  # a generated name: no ordinal


def _containers(spec: dict) -> list[dict]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def _service_of(container: dict) -> str | None:
    args = container.get("args") or []
    return args[0] if args and args[0] in PYTHON_SERVICES else None


def _ports(container: dict) -> dict:
    """containerPort by number and by name."""
    ports = {}
    for port in container.get("ports", []):
        ports[port["containerPort"]] = port["containerPort"]
        if "name" in port:
            ports[port["name"]] = port["containerPort"]
    return ports


def _secret_value(secret: dict, key: str) -> str | None:
    if key in secret.get("stringData", {}):
        return secret["stringData"][key]
    if key in secret.get("data", {}):
        return base64.b64decode(secret["data"][key]).decode()
    return None


def pod_env(m: Manifests, container: dict, pod_name: str, problems: list[str]) -> dict[str, str]:
    """The environment Kubernetes gives `container` in pod `pod_name`."""
    env: dict[str, str] = {}
    where = f"container {container['name']}"
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            config = m.get("ConfigMap", source["configMapRef"]["name"])
            if config is None:
                problems.append(f"{where}: envFrom ConfigMap {source['configMapRef']['name']} does not exist")
            else:
                env.update(config.get("data", {}))
        if "secretRef" in source:
            secret = m.get("Secret", source["secretRef"]["name"])
            if secret is None:
                problems.append(f"{where}: envFrom Secret {source['secretRef']['name']} does not exist")
            else:
                env.update({k: _secret_value(secret, k) for k in [*secret.get("stringData", {}), *secret.get("data", {})]})
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            env[name] = item["value"]
            continue
        source = item.get("valueFrom", {})
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            secret = m.get("Secret", ref["name"])
            value = None if secret is None else _secret_value(secret, ref["key"])
            if value is None:
                problems.append(f"{where}: {name} refers to Secret {ref['name']} key {ref['key']}, which does not exist")
            else:
                env[name] = value
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            config = m.get("ConfigMap", ref["name"])
            if config is None or ref["key"] not in config.get("data", {}):
                problems.append(f"{where}: {name} refers to ConfigMap {ref['name']} key {ref['key']}, which does not exist")
            else:
                env[name] = config["data"][ref["key"]]
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[name] = pod_name
        else:
            env[name] = "<from the API>"
    return env


@contextmanager
def environment(env: dict[str, str]):
    """os.environ is exactly `env` (nothing inherited from the test process)."""
    with mock.patch.dict("os.environ", env, clear=True):
        yield


def _settings(service: str, env: dict[str, str]):
    """The service's settings, computed by its own code from `env`."""
    with environment(entrypoint.service_env(service, env)):
        if service == "order":
            from services.order.config import OrderSettings

            return OrderSettings.from_env()
        if service == "matching":
            from services.matching.config import MatchingSettings

            return MatchingSettings.from_env()
        from services.persistence.config import Settings

        return Settings.from_env()


def _config_modules(service: str) -> list[Path]:
    import services.common.config as common

    if service == "order":
        import services.order.config as own
    elif service == "matching":
        import services.matching.config as own
    else:
        import services.persistence.config as own
    return [Path(common.__file__), Path(own.__file__)]


READERS = {"env", "env_int", "_env_bool", "get", "getenv"}


def env_reads(paths: list[Path]) -> dict[str, bool]:
    """BOURSE_* variables the modules read -> whether the code gives a default."""
    reads: dict[str, bool] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            first = node.args[0]
            if func in READERS and isinstance(first, ast.Constant) and str(first.value).startswith("BOURSE_"):
                default = node.args[1] if len(node.args) > 1 else None
                has_default = default is not None and not (isinstance(default, ast.Constant) and default.value in ("", None))
                reads[first.value] = reads.get(first.value, False) or has_default
    return reads


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "")


def _selected(m: Manifests, service: dict) -> list[tuple[dict, str, dict]]:
    """Pods (workload, pod name, spec) a Service's selector picks."""
    selector = service["spec"].get("selector", {})
    chosen = []
    for workload, pod_name, spec in m.pods():
        labels = dict(workload["spec"]["template"]["metadata"].get("labels", {}))
        if workload["kind"] == "StatefulSet":
            labels["statefulset.kubernetes.io/pod-name"] = pod_name
        if selector and all(labels.get(k) == v for k, v in selector.items()):
            chosen.append((workload, pod_name, spec))
    return chosen


def resolve(m: Manifests, address: str, problems: list[str], what: str) -> list[tuple[dict, str, dict]]:
    """Pods a client reaches at host:port, where host is a Service (or pod.Service) name."""
    host, port = _host_port(address)
    parts = host.split(".")
    service = m.get("Service", parts[-1] if len(parts) == 2 else parts[0])
    if service is None:
        problems.append(f"{what} {address}: no Service named {host}")
        return []
    service_name = service["metadata"]["name"]
    ports = [p for p in service["spec"]["ports"] if p["port"] == port]
    if not ports:
        problems.append(f"{what} {address}: Service {service_name} has no port {port}")
        return []
    pods = _selected(m, service)
    if len(parts) == 2:  # pod.service: a StatefulSet pod's own DNS name, headless Service
        if service["spec"].get("clusterIP") != "None":
            problems.append(f"{what} {address}: Service {service_name} is not headless: no per-pod DNS names")
        pods = [p for p in pods if p[1] == parts[0] and p[0]["spec"].get("serviceName") == service_name]
        if not pods:
            problems.append(f"{what} {address}: no pod {parts[0]} of a StatefulSet governed by Service {service_name}")
            return []
    if not pods:
        problems.append(f"{what} {address}: Service {service_name} selects no pod")
        return []
    target = ports[0].get("targetPort", port)
    for workload, pod_name, spec in pods:
        if not any(target in _ports(c) for c in spec["containers"]):
            problems.append(f"{what} {address}: pod {pod_name} exposes no port {target!r}")
    return pods


# ----- the checks


def check_references(m: Manifests) -> list[str]:
    problems = []
    for service in m.of_kind("Service"):
        name = service["metadata"]["name"]
        pods = _selected(m, service)
        if not pods:
            problems.append(f"Service {name} selects no pod")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for _, pod_name, spec in pods:
                if not any(target in _ports(c) for c in spec["containers"]):
                    problems.append(f"Service {name} targets port {target!r}, which pod {pod_name} does not expose")
    for workload in m.workloads():
        spec = workload["spec"]["template"]["spec"]
        name = f"{workload['kind']} {workload['metadata']['name']}"
        if workload["kind"] != "Job":
            labels = workload["spec"]["template"]["metadata"].get("labels", {})
            selector = workload["spec"]["selector"]["matchLabels"]
            if any(labels.get(k) != v for k, v in selector.items()):
                problems.append(f"{name}: its selector does not match its pod template's labels")
        if workload["kind"] == "StatefulSet":
            governing = m.get("Service", workload["spec"]["serviceName"])
            if governing is None or governing["spec"].get("clusterIP") != "None":
                problems.append(f"{name}: serviceName {workload['spec']['serviceName']} is not a headless Service")
        for volume in spec.get("volumes", []):
            if "configMap" in volume and m.get("ConfigMap", volume["configMap"]["name"]) is None:
                problems.append(f"{name}: volume {volume['name']} uses a missing ConfigMap")
        for container in _containers(spec):
            mounts = {mount["name"] for mount in container.get("volumeMounts", [])}
            missing = mounts - {v["name"] for v in spec.get("volumes", [])} - {
                t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
            if missing:
                problems.append(f"{name}: container {container['name']} mounts undeclared volumes {sorted(missing)}")
    for pdb in m.of_kind("PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        if not any(all(w["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in selector.items())
                   for w in m.workloads()):
            problems.append(f"PodDisruptionBudget {pdb['metadata']['name']} selects no workload")
    for hpa in m.of_kind("HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        target = m.get(ref["kind"], ref["name"])
        if target is None:
            problems.append(f"HorizontalPodAutoscaler {hpa['metadata']['name']} scales a missing {ref['kind']} {ref['name']}")
            continue
        for container in target["spec"]["template"]["spec"]["containers"]:
            if "cpu" not in container.get("resources", {}).get("requests", {}):
                problems.append(f"HorizontalPodAutoscaler {hpa['metadata']['name']}: {container['name']} requests no cpu")
        if _service_of(target["spec"]["template"]["spec"]["containers"][0]) == "order" and \
                hpa["spec"]["maxReplicas"] - 1 > MAX_NODE_ID:
            problems.append(f"HorizontalPodAutoscaler {hpa['metadata']['name']}: maxReplicas beyond node ids 0-{MAX_NODE_ID}")
    return problems


def check_probes(m: Manifests) -> list[str]:
    problems = []
    for workload in m.workloads():
        for container in _containers(workload["spec"]["template"]["spec"]):
            ports = _ports(container)
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(kind)
                if not probe:
                    continue
                handler = probe.get("grpc") or probe.get("tcpSocket") or probe.get("httpGet")
                if handler and handler["port"] not in ports:
                    problems.append(f"{workload['metadata']['name']}/{container['name']}: {kind} port "
                                    f"{handler['port']!r} is not a port the container exposes")
            if _service_of(container) in ("persistence", "matching", "order"):
                for kind in ("startupProbe", "readinessProbe"):
                    if "grpc" not in container.get(kind, {}):
                        problems.append(f"{workload['metadata']['name']}/{container['name']}: {kind} is not a gRPC health probe")
    return problems


def check_services(m: Manifests) -> list[str]:
    """Each Python service's settings, by its own code, from its pod's environment."""
    problems: list[str] = []
    shard_counts = set()
    owners: dict[str, list[int]] = {}
    listed: tuple[str, ...] = ()
    for workload, pod_name, spec in m.pods():
        containers = {c["name"]: c for c in _containers(spec)}
        for container in containers.values():
            service = _service_of(container)
            if service is None:
                continue
            where = f"pod {pod_name} container {container['name']} ({service})"
            env = pod_env(m, container, pod_name, problems)
            reads = env_reads(_config_modules(service))
            for variable, has_default in sorted(reads.items()):
                if not has_default and not env.get(variable):
                    problems.append(f"{where}: {variable} is read without a default but not set")
            try:
                settings = _settings(service, env)
            except (SystemExit, ValueError) as e:
                problems.append(f"{where}: the service refuses its settings: {e}")
                continue
            for variable in sorted(v for v in env if v.startswith("BOURSE_")):
                if not _read_anywhere(variable):
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
                shard_map = _shard_map(env)
                shard_counts.add((workload["spec"]["replicas"], len(shard_map)))
                if settings.shard_index != ordinal:
                    problems.append(f"{where}: shard index {settings.shard_index}, not its ordinal {ordinal}")
                listed = tuple(sorted(_listed(env)))
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


def _read_anywhere(variable: str) -> bool:
    return variable in _service_sources()


@functools.cache
def _service_sources() -> str:
    import services

    root = Path(services.__file__).parent
    return "\n".join(path.read_text() for path in sorted(root.rglob("*.py")) if "tests" not in path.parts)


def _shard_map(env):
    from services.common.config import ShardMap

    with environment(env):
        return ShardMap.from_env()


def _listed(env):
    from services.common.config import symbols_from_env

    with environment(env):
        return symbols_from_env()


def _check_addresses(m: Manifests, where: str, service: str, settings, container: dict, spec: dict) -> list[str]:
    problems = []
    for field in ("persistence_address", "redis_url", "matching_addresses", "db_urls"):
        values = getattr(settings, field, None)
        for value in [values] if isinstance(values, str) else (values or []):
            host = _url_host(value) if "://" in value else _host_port(value)[0]
            if _loopback(host):
                problems.append(f"{where}: {field} is {value}: loopback, the code's default, not set for the cluster")
    if service in ("persistence", "matching", "order"):
        host, port = _host_port(settings.address)
        if not _wildcard(host):
            problems.append(f"{where}: listens on {settings.address}, not on every interface")
        if port not in _ports(container).values():
            problems.append(f"{where}: listens on port {port}, which the container does not expose")
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            handler = container.get(kind, {}).get("grpc") or container.get(kind, {}).get("tcpSocket")
            if handler and _ports(container).get(handler["port"]) != port:
                problems.append(f"{where}: {kind} probes port {handler['port']}, the service listens on {port}")
    if service in ("matching", "order"):
        problems += [p for p in _resolve_problems(m, settings.persistence_address, where, "persistence address")]
        redis_host, redis_port = _url_host(settings.redis_url), _url_port(settings.redis_url, 6379)
        problems += _resolve_problems(m, f"{redis_host}:{redis_port}", where, "Redis")
    return problems


def _resolve_problems(m: Manifests, address: str, where: str, what: str) -> list[str]:
    problems: list[str] = []
    resolve(m, address, problems, f"{where}: {what}")
    return problems


def _url_host(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).host or ""


def _url_port(url: str, default: int) -> int:
    from sqlalchemy.engine import make_url

    return make_url(url).port or default


def _check_order(m: Manifests, where: str, settings, env: dict, workload: dict) -> list[str]:
    problems: list[str] = []
    for shard, address in enumerate(settings.matching_addresses):
        pods = resolve(m, address, problems, f"{where}: BOURSE_MATCHING_ADDRS[{shard}]")
        for _, pod_name, spec in pods:
            container = spec["containers"][0]
            if _service_of(container) != "matching":
                problems.append(f"{where}: BOURSE_MATCHING_ADDRS[{shard}] {address} reaches {pod_name}, not a matching shard")
                continue
            index = _settings("matching", pod_env(m, container, pod_name, problems)).shard_index
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
                _settings("order", {**env, "POD_NAME": f"{name}-{ordinal}"})
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


def check_envoy(m: Manifests) -> list[str]:
    from services.order.service import ORDER_SERVICE

    problems: list[str] = []
    deployments = [w for w in m.workloads() if any((c.get("args") or [None])[0] == "envoy"
                                                   for c in w["spec"]["template"]["spec"]["containers"])]
    if not deployments:
        return ["no Envoy workload"]
    for workload in deployments:
        spec = workload["spec"]["template"]["spec"]
        container = next(c for c in spec["containers"] if (c.get("args") or [None])[0] == "envoy")
        args = container["args"]
        path = Path(args[args.index("-c") + 1]) if "-c" in args else None
        mount = next((v for v in container.get("volumeMounts", []) if path and path.parent == Path(v["mountPath"])), None)
        volume = next((v for v in spec.get("volumes", []) if mount and v["name"] == mount["name"]), None)
        config_map = volume and "configMap" in volume and m.get("ConfigMap", volume["configMap"]["name"])
        if not config_map or path.name not in config_map.get("data", {}):
            problems.append(f"Envoy {workload['metadata']['name']}: -c {path} is not a key of a mounted ConfigMap")
            continue
        bootstrap = json.loads(config_map["data"][path.name])
        listener = bootstrap["static_resources"]["listeners"][0]
        if listener["address"]["socket_address"]["port_value"] not in _ports(container).values():
            problems.append("Envoy listens on a port its container does not expose")
        for cluster in bootstrap["static_resources"]["clusters"]:
            for check in cluster.get("health_checks", []):
                if check.get("grpc_health_check", {}).get("service_name") not in ("", ORDER_SERVICE):
                    problems.append(f"Envoy cluster {cluster['name']} health-checks a service the order service does not report")
            for group in cluster["load_assignment"]["endpoints"]:
                for endpoint in group["lb_endpoints"]:
                    socket = endpoint["endpoint"]["address"]["socket_address"]
                    address = f"{socket['address']}:{socket['port_value']}"
                    pods = resolve(m, address, problems, f"Envoy cluster {cluster['name']} backend")
                    if pods and not all(_service_of(p[2]["containers"][0]) == "order" for p in pods):
                        problems.append(f"Envoy backend {address} reaches pods other than the order service")
                    service = m.get("Service", socket["address"])
                    if cluster["type"] == "STRICT_DNS" and service and service["spec"].get("clusterIP") != "None":
                        problems.append(f"Envoy backend {address} is a ClusterIP Service: one virtual IP, so "
                                        "no per-replica balancing or health checks; make it headless")
        filters = listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
        paths = [h["string_match"]["exact"] for f in filters if f["name"] == "envoy.filters.http.health_check"
                 for h in f["typed_config"]["headers"] if h["name"] == ":path"]
        probe = container.get("readinessProbe", {}).get("httpGet")
        if probe and probe["path"] not in paths:
            problems.append(f"Envoy readiness probes {probe['path']}, which its health_check filter does not answer")
        problems += _check_envoy_drain(workload, container, args)
    return problems


def _check_envoy_drain(workload: dict, container: dict, args: list[str]) -> list[str]:
    """Envoy exits at once on SIGTERM: its preStop must outlast leaving the Service and
    the drain, and the grace period must outlast the preStop."""
    hook = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if "envoy-drain" not in hook:
        return [f"Envoy {workload['metadata']['name']}: no envoy-drain preStop hook: SIGTERM cuts in-flight calls"]
    problems = []
    unready = float(hook[hook.index("--unready-wait") + 1]) if "--unready-wait" in hook else 5
    drain = float(hook[hook.index("--drain") + 1]) if "--drain" in hook else 10
    probe = container.get("readinessProbe", {})
    if probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3) > unready:
        problems.append(f"Envoy preStop waits {unready:g} s, less than its readiness probe takes to fail")
    if "--drain-time-s" not in args or float(args[args.index("--drain-time-s") + 1]) > drain:
        problems.append("Envoy's --drain-time-s is missing or longer than the preStop's drain wait")
    grace = workload["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    if grace < unready + drain + DRAIN_MARGIN_S:
        problems.append(f"Envoy terminationGracePeriodSeconds {grace} < preStop {unready + drain:g} s + {DRAIN_MARGIN_S} s")
    return problems


def check_migration(m: Manifests) -> list[str]:
    problems = []
    jobs = [j for j in m.of_kind("Job") if any(_service_of(c) == "migrate" for c in j["spec"]["template"]["spec"]["containers"])]
    if not jobs:
        problems.append("no Job runs the migrations (migrate)")
    for workload in m.workloads():
        spec = workload["spec"]["template"]["spec"]
        if any(_service_of(c) == "persistence" for c in spec["containers"]) and \
                not any(_service_of(c) == "wait-schema" for c in spec.get("initContainers", [])):
            problems.append(f"{workload['metadata']['name']}: persistence may start before the migrations "
                            "(no wait-schema init container)")
    return problems


def problems(objects: list[dict]) -> list[str]:
    m = Manifests(objects)
    found = []
    for check in (check_references, check_probes, check_services, check_envoy, check_migration):
        found += check(m)
    return list(dict.fromkeys(found))  # one report of each, in order
