"""Checks of Envoy, the clients' entry point: its config is a mounted ConfigMap, it
listens on its container's port, its backends are the headless order Service (so it
balances and health-checks each replica), its readiness probe is a path it answers,
and its preStop drain fits in its grace period.
"""

from __future__ import annotations

import json
from pathlib import Path

from infra.envoy.config import ADMIN_CLUSTER, http_filters
from infra.k8s.cluster_model import Manifests, container_ports, resolve, service_of
from infra.k8s.service_code import DRAIN_MARGIN_S


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
        if listener["address"]["socket_address"]["port_value"] not in container_ports(container).values():
            problems.append("Envoy listens on a port its container does not expose")
        for cluster in bootstrap["static_resources"]["clusters"]:
            for check in cluster.get("health_checks", []):
                if check.get("grpc_health_check", {}).get("service_name") not in ("", ORDER_SERVICE):
                    problems.append(f"Envoy cluster {cluster['name']} health-checks a service the order service does not report")
            for group in cluster["load_assignment"]["endpoints"]:
                for endpoint in group["lb_endpoints"]:
                    socket = endpoint["endpoint"]["address"]["socket_address"]
                    address = f"{socket['address']}:{socket['port_value']}"
                    if cluster["name"] == ADMIN_CLUSTER:  # the stats listener reaches its own admin
                        admin = bootstrap["admin"]["address"]["socket_address"]
                        if address != f"{admin['address']}:{admin['port_value']}":
                            problems.append(f"Envoy cluster {ADMIN_CLUSTER} reaches {address}, not Envoy's own admin")
                        continue
                    pods = resolve(m, address, problems, f"Envoy cluster {cluster['name']} backend")
                    if pods and not all(service_of(p[2]["containers"][0]) == "order" for p in pods):
                        problems.append(f"Envoy backend {address} reaches pods other than the order service")
                    service = m.get("Service", socket["address"])
                    if cluster["type"] == "STRICT_DNS" and service and service["spec"].get("clusterIP") != "None":
                        problems.append(f"Envoy backend {address} is a ClusterIP Service: one virtual IP, so "
                                        "no per-replica balancing or health checks; make it headless")
        filters = http_filters(bootstrap)
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
