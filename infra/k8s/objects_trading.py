"""The trading path: the matching shards (one StatefulSet pod per shard range), the
order service (a StatefulSet for unique Snowflake node ids, scaled by an autoscaler) and
Envoy, the clients' entry point, with its generated config in a ConfigMap.
"""

from __future__ import annotations

from pathlib import Path

from infra.envoy import config as envoy_config
from infra.k8s.layout import (
    CLOSE_MARGIN_S,
    ENVOY_ADMIN_PORT,
    ENVOY_PORT,
    MATCHING_PORT,
    METRICS_PORT,
    ORDER_PORT,
    Layout,
)
from infra.k8s.objects_common import (
    POD_NAME_ENV,
    PYTHON,
    TMP_MOUNT,
    app_container,
    app_pod,
    digest,
    disruption_budget,
    k8s_service,
    labels,
    metadata,
    requests_and_limits,
    service_container,
)

ENVOY_CONFIG = "envoy-config"
ENVOY_CONFIG_PATH = "/etc/envoy/envoy.json"
ENVOY_HEALTH_PATH = "/healthz"
# Clients reach Envoy over TLS with the certificate of this Secret (type kubernetes.io/tls),
# which is the operator's to create (kubectl create secret tls, or cert-manager): a
# certificate for the name clients use is not something the manifests can know.
EDGE_TLS_SECRET = "bourse-edge-tls"
ENVOY_TLS_DIR = "/etc/envoy/tls"
# Envoy's preStop: fail its health path, wait for the Service to drop it, then drain.
ENVOY_UNREADY_WAIT_S = 5
ENVOY_DRAIN_S = 10


def matching(layout: Layout, config_hash: str) -> list[dict]:
    env = [POD_NAME_ENV, {"name": "BOURSE_MATCHING_ADDR", "value": f"0.0.0.0:{MATCHING_PORT}"}]
    # The entrypoint sets BOURSE_SHARD_INDEX to the pod's ordinal (matching-2 -> 2).
    container = service_container(layout, "matching", MATCHING_PORT, env,
                                  requests_and_limits("1", "1Gi", "2", "2Gi"), startup_failures=90,
                                  grpc_liveness=False)
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": metadata(layout, "matching", "matching"),
        "spec": {
            "serviceName": "matching",
            "replicas": layout.shards,
            # Shards are independent: start and replace them all at once. A StatefulSet
            # never runs two pods of one ordinal, so one shard never has two owners.
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": labels("matching")},
            "template": app_pod(layout, [container], config_hash, "matching", layout.grace_seconds, spread=True),
        },
    }
    objects = [k8s_service(layout, "matching", "matching", MATCHING_PORT, headless=True), statefulset]
    # One ClusterIP Service per shard (matching-i -> pod matching-i): a stable address the
    # order service's gRPC channel keeps across pod restarts (no DNS re-resolution delay).
    for shard in range(layout.shards):
        selector = {**labels("matching"), "statefulset.kubernetes.io/pod-name": f"matching-{shard}"}
        objects.append(k8s_service(layout, f"matching-{shard}", "matching", MATCHING_PORT, selector=selector))
    return objects + [disruption_budget(layout, "matching")]


def order(layout: Layout, config_hash: str) -> list[dict]:
    # API keys are data (database 0, through persistence): no key in the environment.
    env = [POD_NAME_ENV, {"name": "BOURSE_ORDER_ADDR", "value": f"0.0.0.0:{ORDER_PORT}"}]
    # The entrypoint sets BOURSE_NODE_ID to the pod's ordinal: unique per replica, as the
    # Snowflake ids need, which a Deployment's random pod names could not guarantee.
    container = service_container(layout, "order", ORDER_PORT, env,
                                  requests_and_limits("500m", "256Mi", "2", "512Mi"), startup_failures=45)
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": metadata(layout, "order", "order"),
        "spec": {
            "serviceName": "order",
            # No replicas: the autoscaler owns the count (from minReplicas up), and a
            # re-apply does not reset it.
            "podManagementPolicy": "Parallel",  # stateless: scale like a Deployment
            "selector": {"matchLabels": labels("order")},
            "template": app_pod(layout, [container], config_hash, "order", layout.grace_seconds, spread=True),
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(layout, "order", "order"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "order"},
            "minReplicas": layout.order_replicas,
            "maxReplicas": layout.order_max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }
    # Headless: the name resolves to every ready replica, which Envoy balances itself.
    return [k8s_service(layout, "order", "order", ORDER_PORT, headless=True), statefulset, hpa,
            disruption_budget(layout, "order")]


def envoy_bootstrap(layout: Layout) -> dict:
    # Its stats at :METRICS_PORT/metrics, as the services' (the pod's scrape annotations).
    return envoy_config.render(ENVOY_PORT, ENVOY_ADMIN_PORT, [("order", ORDER_PORT)],
                               health_path=ENVOY_HEALTH_PATH,
                               tls=(f"{ENVOY_TLS_DIR}/tls.crt", f"{ENVOY_TLS_DIR}/tls.key"),
                               stats_port=METRICS_PORT)


def envoy(layout: Layout) -> list[dict]:
    bootstrap = envoy_config.dumps(envoy_bootstrap(layout))
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(layout, ENVOY_CONFIG, "envoy"),
                  "data": {"envoy.json": bootstrap}}
    args = ["envoy", "-c", ENVOY_CONFIG_PATH, "--disable-hot-restart", "--concurrency", "2", "--log-level", "info",
            "--drain-time-s", str(ENVOY_DRAIN_S), "--drain-strategy", "immediate"]
    container = app_container(layout, "envoy", args, [], requests_and_limits("250m", "128Mi", "2", "512Mi"), ENVOY_PORT)
    container.pop("envFrom")
    container.pop("env")
    container["ports"].append({"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"})
    container["volumeMounts"] = [TMP_MOUNT, {"name": "config", "mountPath": str(Path(ENVOY_CONFIG_PATH).parent),
                                             "readOnly": True},
                                 {"name": "tls", "mountPath": ENVOY_TLS_DIR, "readOnly": True}]
    container["readinessProbe"] = {"httpGet": {"path": ENVOY_HEALTH_PATH, "port": "grpc", "scheme": "HTTPS"},
                                   "periodSeconds": 2, "failureThreshold": 2}
    container["livenessProbe"] = {"tcpSocket": {"port": "grpc"}, "periodSeconds": 10, "failureThreshold": 6}
    container["lifecycle"] = {"preStop": {"exec": {"command": [
        PYTHON, "-m", "infra.k8s.entrypoint", "envoy-drain", "--admin", f"127.0.0.1:{ENVOY_ADMIN_PORT}",
        "--unready-wait", str(ENVOY_UNREADY_WAIT_S), "--drain", str(ENVOY_DRAIN_S)]}}}
    pod = app_pod(layout, [container], digest(config_map), "envoy",
                  ENVOY_UNREADY_WAIT_S + ENVOY_DRAIN_S + CLOSE_MARGIN_S, spread=True)
    pod["spec"]["volumes"].append({"name": "config", "configMap": {"name": ENVOY_CONFIG}})
    pod["spec"]["volumes"].append({"name": "tls", "secret": {"secretName": EDGE_TLS_SECRET}})
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(layout, "envoy", "envoy"),
        "spec": {
            "replicas": layout.envoy_replicas,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "selector": {"matchLabels": labels("envoy")},
            "template": pod,
        },
    }
    # ClusterIP: expose it as fits the cluster (LoadBalancer, Ingress, Gateway; README).
    return [config_map, k8s_service(layout, "envoy", "envoy", ENVOY_PORT), deployment,
            disruption_budget(layout, "envoy")]
