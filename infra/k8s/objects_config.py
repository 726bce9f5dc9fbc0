"""The Namespace and the settings every service reads: the ConfigMap (symbols, shard
ranges, every address, drain time) and the Secret (API keys, PostgreSQL password) whose
values are placeholders to replace in an overlay.
"""

from __future__ import annotations

from infra.k8s.entrypoint import PLACEHOLDER
from infra.k8s.layout import CONFIG, METRICS_PORT, PERSISTENCE_PORT, REDIS_PORT, SECRETS, Layout
from infra.k8s.objects_common import metadata


def namespace(layout: Layout) -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": layout.namespace, "labels": {"app.kubernetes.io/part-of": "bourse"}}}]


def settings(layout: Layout) -> list[dict]:
    config = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(layout, CONFIG, "config"),
        "data": {
            "BOURSE_SYMBOLS": " ".join(layout.symbol_list),
            "BOURSE_SHARD_RANGES": layout.shard_ranges,
            "BOURSE_MATCHING_ADDRS": ",".join(layout.matching_address(i) for i in range(layout.shards)),
            "BOURSE_DB_URLS": ",".join(layout.db_url(i) for i in range(layout.databases)),
            "BOURSE_PERSISTENCE_ADDR": f"persistence:{PERSISTENCE_PORT}",
            "BOURSE_REDIS_URL": f"redis://redis:{REDIS_PORT}/0",
            "BOURSE_DRAIN_MS": str(layout.drain_ms),
            "BOURSE_METRICS_ADDR": f"0.0.0.0:{METRICS_PORT}",
        },
    }
    secret = {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": metadata(layout, SECRETS, "config", annotations={
            "bourse.dev/placeholder": f"every {PLACEHOLDER} value must be replaced before real use (see README)"}),
        "type": "Opaque",
        "stringData": {
            "POSTGRES_PASSWORD": f"{PLACEHOLDER}-postgres-password",
        },
    }
    return [config, secret]
