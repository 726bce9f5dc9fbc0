"""Building blocks of the bourse objects: labels and metadata, the image's containers
and pods (non-root, read-only, probed by grpc.health.v1), Services and disruption
budgets. The components (objects_config, objects_data, objects_trading) are assembled
from these, so every pod of the image gets the same hardening and the same settings.
"""

from __future__ import annotations

import hashlib
import json

from infra.k8s.layout import CONFIG, METRICS_PORT, SECRETS, Layout

APP_UID = 10001  # the image's non-root user (Dockerfile)
PYTHON = "/opt/venv/bin/python"  # the image's venv (Dockerfile)


def labels(component: str) -> dict:
    return {"app.kubernetes.io/part-of": "bourse", "app.kubernetes.io/component": component}


def metadata(layout: Layout, name: str, component: str, **extra) -> dict:
    return {"name": name, "namespace": layout.namespace, "labels": labels(component), **extra}


def digest(*objects) -> str:
    """Stable across renders: as a pod template annotation, it rolls the pods exactly
    when the objects they read change."""
    return hashlib.sha256(json.dumps(objects, sort_keys=True).encode()).hexdigest()[:16]


def requests_and_limits(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> dict:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu_limit, "memory": memory_limit}}


def grpc_probe(port: int, period: int, failures: int) -> dict:
    # grpc.health.v1 with the empty service name: every service reports it (server.py).
    return {"grpc": {"port": port}, "periodSeconds": period, "timeoutSeconds": 2, "failureThreshold": failures}


def secret_env(name: str, key: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": SECRETS, "key": key}}}


POD_NAME_ENV = {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
APP_POD_SECURITY = {
    "runAsNonRoot": True, "runAsUser": APP_UID, "runAsGroup": APP_UID, "fsGroup": APP_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
APP_SECURITY = {
    "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
}
TMP_VOLUME = {"name": "tmp", "emptyDir": {}}
TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}


def app_container(layout: Layout, name: str, args: list[str], env: list[dict], resources: dict,
                  port: int | None = None, port_name: str = "grpc") -> dict:
    container = {"name": name, "image": layout.image, "imagePullPolicy": "IfNotPresent", "args": args}
    if port is not None:
        container["ports"] = [{"name": port_name, "containerPort": port, "protocol": "TCP"}]
    container.update({
        "envFrom": [{"configMapRef": {"name": CONFIG}}],
        "env": env,
        "resources": resources,
        "securityContext": APP_SECURITY,
        "volumeMounts": [TMP_MOUNT],
    })
    return container


def service_container(layout: Layout, name: str, port: int, env: list[dict], resources: dict,
                      startup_failures: int, grpc_liveness: bool = True) -> dict:
    """A Python service: listens on all interfaces, probed by grpc.health.v1, and serves
    its Prometheus metrics on METRICS_PORT (BOURSE_METRICS_ADDR in the ConfigMap)."""
    container = app_container(layout, name, [name], env, resources, port)
    container["ports"].append({"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"})
    # Startup: until the first SERVING (database wait, book recovery). Readiness: a
    # draining or recovering service leaves its Service's endpoints within seconds.
    container["startupProbe"] = grpc_probe(port, 2, startup_failures)
    container["readinessProbe"] = grpc_probe(port, 2, 2)
    if grpc_liveness:
        container["livenessProbe"] = grpc_probe(port, 10, 6)
    else:
        # A matching shard reports NOT_SERVING while persistence is down and it cannot
        # recover its books: restarting it then would only add a crash-loop back-off to
        # the outage. Liveness asks only that it still listens.
        container["livenessProbe"] = {"tcpSocket": {"port": port}, "periodSeconds": 10, "timeoutSeconds": 2,
                                      "failureThreshold": 6}
    return container


def app_pod(layout: Layout, containers: list[dict], config_hash: str, component: str, grace: int,
            init: list[dict] | None = None, spread: bool = False) -> dict:
    """A pod of bourse's image; one whose container serves metrics carries the
    prometheus.io scrape annotations (as Prometheus's kubernetes-pods job reads them)."""
    spec = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": APP_POD_SECURITY,
        "terminationGracePeriodSeconds": grace,
        **({"initContainers": init} if init else {}),
        "containers": containers,
        "volumes": [TMP_VOLUME],
    }
    if spread:
        spec["topologySpreadConstraints"] = [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": labels(component)},
        }]
    # Env comes from ConfigMaps at start: a changed config rolls the pods.
    annotations = {"bourse.dev/config-hash": config_hash}
    if any(p.get("name") == "metrics" for c in containers for p in c.get("ports", [])):
        annotations.update({"prometheus.io/scrape": "true", "prometheus.io/port": str(METRICS_PORT),
                            "prometheus.io/path": "/metrics"})
    return {"metadata": {"labels": labels(component), "annotations": annotations}, "spec": spec}


def k8s_service(layout: Layout, name: str, component: str, port: int, port_name: str = "grpc",
                headless: bool = False, selector: dict | None = None) -> dict:
    """A Kubernetes Service object (the bourse services are the containers behind it)."""
    spec = {
        "selector": selector or labels(component),
        "ports": [{"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}],
    }
    if headless:
        spec["clusterIP"] = "None"
    if port_name == "grpc":
        spec["ports"][0]["appProtocol"] = "kubernetes.io/h2c"
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata(layout, name, component), "spec": spec}


def disruption_budget(layout: Layout, component: str) -> dict:
    return {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata(layout, component, component),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(component)}},
    }
