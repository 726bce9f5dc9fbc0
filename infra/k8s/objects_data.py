"""Where the state lives: PostgreSQL (one server per database shard), Redis (market data
cache), the migrate Job that owns the schema, and the persistence service in front of
the databases.
"""

from __future__ import annotations

from infra.k8s.layout import (
    DB_NAME,
    DB_USER,
    PERSISTENCE_PORT,
    POSTGRES_PORT,
    REDIS_PORT,
    Layout,
)
from infra.k8s.objects_common import (
    app_container,
    app_pod,
    disruption_budget,
    k8s_service,
    labels,
    metadata,
    requests_and_limits,
    secret_env,
    service_container,
)


def postgres(layout: Layout) -> list[dict]:
    # One StatefulSet, one ordinal per database shard: postgres-i.postgres is database i
    # of BOURSE_DB_URLS, each with its own volume.
    probe = ["pg_isready", "-h", "127.0.0.1", "-p", str(POSTGRES_PORT), "-U", DB_USER, "-d", DB_NAME]
    container = {
        "name": "postgres",
        "image": "postgres:15-bookworm",
        "args": ["-c", "max_connections=200"],
        "env": [
            {"name": "POSTGRES_USER", "value": DB_USER},
            {"name": "POSTGRES_DB", "value": DB_NAME},
            secret_env("POSTGRES_PASSWORD", "POSTGRES_PASSWORD"),
            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},  # not the volume root (lost+found)
        ],
        "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT, "protocol": "TCP"}],
        "resources": requests_and_limits("500m", "1Gi", "2", "2Gi"),
        "startupProbe": {"exec": {"command": probe}, "periodSeconds": 5, "failureThreshold": 60},
        "readinessProbe": {"exec": {"command": probe}, "periodSeconds": 5, "timeoutSeconds": 3},
        "livenessProbe": {"exec": {"command": probe}, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 6},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
    }
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": metadata(layout, "postgres", "postgres"),
        "spec": {
            "serviceName": "postgres",
            "replicas": layout.databases,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": labels("postgres")},
            "template": {
                "metadata": {"labels": labels("postgres")},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    # uid 999 is postgres in the official Debian-based image.
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "terminationGracePeriodSeconds": 60,
                    "containers": [container],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data", "labels": labels("postgres")},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}},
            }],
        },
    }
    # Headless, publishing not-ready pods: the per-pod DNS names exist from the start;
    # clients (persistence, migrate) retry until the server answers.
    service = k8s_service(layout, "postgres", "postgres", POSTGRES_PORT, "postgres", headless=True)
    service["spec"]["publishNotReadyAddresses"] = True
    return [service, statefulset, disruption_budget(layout, "postgres")]


def redis(layout: Layout) -> list[dict]:
    # Market data cache only (books and the last 100 trades per symbol, rewritten after
    # every commit and on shard recovery): nothing to persist.
    probe = {"exec": {"command": ["redis-cli", "ping"]}, "periodSeconds": 5, "timeoutSeconds": 2}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(layout, "redis", "redis"),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels("redis")},
            "template": {
                "metadata": {"labels": labels("redis")},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 999, "runAsGroup": 999,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "redis",
                        "image": "redis:7-bookworm",
                        "args": ["redis-server", "--save", "", "--appendonly", "no"],
                        "ports": [{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
                        "resources": requests_and_limits("100m", "128Mi", "1", "512Mi"),
                        "readinessProbe": probe,
                        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 6},
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    }],
                },
            },
        },
    }
    return [k8s_service(layout, "redis", "redis", REDIS_PORT, "redis"), deployment]


def _db_env() -> list[dict]:
    return [secret_env("PGPASSWORD", "POSTGRES_PASSWORD")]


def migrate(layout: Layout, config_hash: str) -> list[dict]:
    # Re-applied with a new image it runs again (Alembic upgrades are idempotent and
    # serialised by an advisory lock); a finished Job is removed after ten minutes so
    # that the next `kubectl apply` can create it again (a Job's pod template is
    # immutable).
    container = app_container(layout, "migrate", ["migrate"], _db_env(),
                              requests_and_limits("100m", "256Mi", "1", "512Mi"))
    pod = app_pod(layout, [container], config_hash, "migrate", 30)
    pod["spec"]["restartPolicy"] = "OnFailure"
    return [{
        "apiVersion": "batch/v1", "kind": "Job", "metadata": metadata(layout, "migrate", "migrate"),
        "spec": {"backoffLimit": 10, "activeDeadlineSeconds": 1800, "ttlSecondsAfterFinished": 600,
                 "template": pod},
    }]


def persistence(layout: Layout, config_hash: str) -> list[dict]:
    env = [{"name": "BOURSE_PERSISTENCE_ADDR", "value": f"0.0.0.0:{PERSISTENCE_PORT}"}, *_db_env()]
    container = service_container(layout, "persistence", PERSISTENCE_PORT, env,
                                  requests_and_limits("500m", "512Mi", "2", "1Gi"), startup_failures=60)
    # The migrate Job owns schema changes: persistence starts once every database is at
    # the schema revision its image carries.
    wait = app_container(layout, "wait-schema", ["wait-schema"], _db_env(),
                         requests_and_limits("50m", "128Mi", "500m", "256Mi"))
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(layout, "persistence", "persistence"),
        "spec": {
            "replicas": 1,
            # Never two at once: a draining process could still commit a write its caller
            # gave up on after the new one served a recovery read (store.py waits only for
            # its own writes).
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": labels("persistence")},
            "template": app_pod(layout, [container], config_hash, "persistence", layout.grace_seconds, init=[wait]),
        },
    }
    return [k8s_service(layout, "persistence", "persistence", PERSISTENCE_PORT), deployment]
