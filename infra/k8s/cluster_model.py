"""The rendered objects as the cluster would read them: the pods each workload runs, the
environment each container gets (ConfigMap, Secret, downward API), and the pods a
client reaches at an address (Service selectors, per-pod DNS names of StatefulSets).

The checks (checks_*.py) ask their questions through this model, so each reads like the
rule it enforces rather than like a walk over nested dicts.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Iterator

# The image's commands (entrypoint.py) that run a service's Python code and settings.
PYTHON_SERVICES = ("persistence", "migrate", "wait-schema", "matching", "order")


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


def pod_containers(spec: dict) -> list[dict]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def service_of(container: dict) -> str | None:
    args = container.get("args") or []
    return args[0] if args and args[0] in PYTHON_SERVICES else None


def container_ports(container: dict) -> dict:
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


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "")


def selected_pods(m: Manifests, service: dict) -> list[tuple[dict, str, dict]]:
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
    host, port = host_port(address)
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
    pods = selected_pods(m, service)
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
        if not any(target in container_ports(c) for c in spec["containers"]):
            problems.append(f"{what} {address}: pod {pod_name} exposes no port {target!r}")
    return pods


def url_host(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).host or ""


def url_port(url: str, default: int) -> int:
    from sqlalchemy.engine import make_url

    return make_url(url).port or default
