"""Checks that the objects are wired to each other: every Service selects pods that
expose its target port, selectors match their templates, StatefulSets have their
headless Service, volumes and mounts exist, budgets and autoscalers find their
workloads (the order service's within its node ids), probes use exposed ports (the
services' readiness and startup by gRPC health), and persistence cannot start before
the migrations.
"""

from __future__ import annotations

from infra.k8s.cluster_model import (
    Manifests,
    container_ports,
    pod_containers,
    selected_pods,
    service_of,
)
from infra.k8s.service_code import MAX_NODE_ID


def check_references(m: Manifests) -> list[str]:
    problems = []
    for service in m.of_kind("Service"):
        name = service["metadata"]["name"]
        pods = selected_pods(m, service)
        if not pods:
            problems.append(f"Service {name} selects no pod")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for _, pod_name, spec in pods:
                if not any(target in container_ports(c) for c in spec["containers"]):
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
        for container in pod_containers(spec):
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
        if service_of(target["spec"]["template"]["spec"]["containers"][0]) == "order" and \
                hpa["spec"]["maxReplicas"] - 1 > MAX_NODE_ID:
            problems.append(f"HorizontalPodAutoscaler {hpa['metadata']['name']}: maxReplicas beyond node ids 0-{MAX_NODE_ID}")
    return problems


def check_probes(m: Manifests) -> list[str]:
    problems = []
    for workload in m.workloads():
        for container in pod_containers(workload["spec"]["template"]["spec"]):
            ports = container_ports(container)
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(kind)
                if not probe:
                    continue
                handler = probe.get("grpc") or probe.get("tcpSocket") or probe.get("httpGet")
                if handler and handler["port"] not in ports:
                    problems.append(f"{workload['metadata']['name']}/{container['name']}: {kind} port "
                                    f"{handler['port']!r} is not a port the container exposes")
            if service_of(container) in ("persistence", "matching", "order"):
                for kind in ("startupProbe", "readinessProbe"):
                    if "grpc" not in container.get(kind, {}):
                        problems.append(f"{workload['metadata']['name']}/{container['name']}: {kind} is not a gRPC health probe")
    return problems

def check_migration(m: Manifests) -> list[str]:
    problems = []
    jobs = [j for j in m.of_kind("Job") if any(service_of(c) == "migrate" for c in j["spec"]["template"]["spec"]["containers"])]
    if not jobs:
        problems.append("no Job runs the migrations (migrate)")
    for workload in m.workloads():
        spec = workload["spec"]["template"]["spec"]
        if any(service_of(c) == "persistence" for c in spec["containers"]) and \
                not any(service_of(c) == "wait-schema" for c in spec.get("initContainers", [])):
            problems.append(f"{workload['metadata']['name']}: persistence may start before the migrations "
                            "(no wait-schema init container)")
    return problems
