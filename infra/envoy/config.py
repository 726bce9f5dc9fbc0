"""Envoy v3 bootstrap for the gRPC edge, generated as plain data.

Plain dicts (not envoy-data-plane, whose JSON output misnames some fields such as
`consecutive_5xx`) dumped as JSON, which Envoy reads as YAML. Every generated file is
meant to be checked with `envoy --mode validate -c FILE` (see tests/).

    python -m infra.envoy.config --listen-port 8080 --admin-port 9901 \
        --backend 127.0.0.1:50051 --backend 127.0.0.1:50052 -o envoy.json
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys

CLUSTER = "order_service"
# The same replicas, for order-entry sessions: placed round robin, not by least
# requests. A session is placed once, when it opens, and sessions opening together all
# saw the replicas with no requests yet, so least-request placed them as chance fell
# (4 sessions 3/1 or 4/0 on two replicas in half the runs); round robin spreads them.
SESSION_CLUSTER = "order_service_sessions"
SESSION_PATH = "/bourse.order.v1.OrderService/OrderEntry"
HEALTH_SERVICE = "bourse.order.v1.OrderService"

# Envoy retries, on another replica, only what another replica can serve: a connection
# that failed, was refused or reset (a replica that died or is stopping). SubmitOrder is
# idempotent by (account, symbol, client_order_id), so even a retry after the request
# reached a backend (`reset`) cannot create a second order. Not UNAVAILABLE answers: a
# replica answers so when a dependency (a matching shard, persistence) is down or
# stalled, which every replica shares; retrying those only spent the client's deadline
# on two more internal timeouts (a GetOrder with persistence stalled ended DEADLINE_EXCEEDED
# after 15 s instead of UNAVAILABLE after 5).
RETRY_ON = "connect-failure,refused-stream,reset"

# Limits at the edge (the services are the second line: the order service refuses
# requests over 64 KiB and counts calls in flight per API key):
# Request headers: an API key and the usual gRPC headers need under 1 KiB. Bigger ones up
# to 256 KiB go on, so that the order service answers them (an oversized key is
# UNAUTHENTICATED there); over that, Envoy ends the call. HTTP/2 decoding ends the whole
# connection (GOAWAY COMPRESSION_ERROR, which clients see as a retryable UNAVAILABLE) on
# a header field over max_header_field_size_kb: 256 is the most Envoy allows, and it may
# not exceed the limit on all headers, hence the two are equal.
MAX_REQUEST_HEADERS_KB = 256
MAX_HEADER_FIELD_KB = 256
MAX_HEADERS_COUNT = 64
MAX_CONNECTIONS = 10_000  # client connections to this Envoy at once; beyond, refused
# A connection with no call on it for this long is closed; a call (a stream included)
# that sends and receives nothing for this long is ended. Subscriptions send a
# heartbeat every 15 s, and unary calls are bounded by their deadline.
CONNECTION_IDLE_TIMEOUT = "300s"
STREAM_IDLE_TIMEOUT = "60s"
# HTTP/2 flow control: how much one stream, and one connection, may send ahead of what
# Envoy has passed on, which bounds what a client can make it buffer.
INITIAL_STREAM_WINDOW = 256 * 1024
INITIAL_CONNECTION_WINDOW = 1024 * 1024

ACCESS_LOG_FORMAT = (
    "[%START_TIME%] %REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL% http=%RESPONSE_CODE% "
    "grpc=%GRPC_STATUS% flags=%RESPONSE_FLAGS% bytes_in=%BYTES_RECEIVED% "
    "bytes_out=%BYTES_SENT% ms=%DURATION% upstream=%UPSTREAM_HOST% attempts=%UPSTREAM_REQUEST_ATTEMPT_COUNT%\n"
)


def _type(name: str) -> str:
    return "type.googleapis.com/" + name


def _address(host: str, port: int) -> dict:
    return {"socket_address": {"address": host, "port_value": int(port)}}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _access_log(target: str | None) -> list[dict]:
    if target is None:
        return []
    log_format = {"text_format_source": {"inline_string": ACCESS_LOG_FORMAT}}
    if target in ("-", "stdout"):
        return [{
            "name": "envoy.access_loggers.stdout",
            "typed_config": {
                "@type": _type("envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"),
                "log_format": log_format,
            },
        }]
    return [{
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": _type("envoy.extensions.access_loggers.file.v3.FileAccessLog"),
            "path": target,
            "log_format": log_format,
        },
    }]


def _route(cluster: str = CLUSTER, match: dict | None = None) -> dict:
    return {
        "match": match or {"prefix": "/"},
        "route": {
            "cluster": cluster,
            # 0 disables the 15 s default, which would cut long-lived streams. The
            # client's deadline (grpc-timeout) goes on to the order service, which
            # budgets its work by it; Envoy does not enforce it, because a stream it
            # ended at the deadline reached the client as a reset (INTERNAL) when it won
            # the race with the client's own DEADLINE_EXCEEDED. A client that vanishes
            # resets its calls, and one that goes quiet meets the stream idle timeout.
            "timeout": "0s",
            "retry_policy": {
                "retry_on": RETRY_ON,
                "num_retries": 2,
                "retry_back_off": {"base_interval": "0.025s", "max_interval": "0.25s"},
                # Retry on another backend than the one that just failed.
                "retry_host_predicate": [{
                    "name": "envoy.retry_host_predicates.previous_hosts",
                    "typed_config": {
                        "@type": _type("envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"),
                    },
                }],
                "host_selection_retry_max_attempts": 3,
            },
        },
    }


def _health_check_filter(path: str) -> dict:
    # Answers `path` itself (200, or 503 once `POST /healthcheck/fail` on the admin port
    # started a drain) so an orchestrator can probe Envoy without reaching the admin.
    return {
        "name": "envoy.filters.http.health_check",
        "typed_config": {
            "@type": _type("envoy.extensions.filters.http.health_check.v3.HealthCheck"),
            "pass_through_mode": False,
            "headers": [{"name": ":path", "string_match": {"exact": path}}],
        },
    }


def _tls(certificate: str, key: str) -> dict:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": _type("envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"),
            "common_tls_context": {
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                "tls_certificates": [{"certificate_chain": {"filename": certificate},
                                      "private_key": {"filename": key}}],
            },
        },
    }


def _listener(listen_host: str, listen_port: int, access_log: str | None,
              health_path: str | None = None, tls: tuple[str, str] | None = None) -> dict:
    manager = {
        "@type": _type("envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"),
        "stat_prefix": "grpc_ingress",
        # AUTO: h2c for gRPC clients, HTTP/1.1 for grpc-web from browsers.
        "codec_type": "AUTO",
        "http2_protocol_options": {
            "max_concurrent_streams": 1024,
            "initial_stream_window_size": INITIAL_STREAM_WINDOW,
            "initial_connection_window_size": INITIAL_CONNECTION_WINDOW,
            # A bad request (headers too big, say) ends that call, not the connection
            # and every other call on it, which clients would see as UNAVAILABLE.
            "override_stream_error_on_invalid_http_message": True,
            # Its default, 64 KiB, ends the connection on a big header (see MAX_HEADER_FIELD_KB).
            "max_header_field_size_kb": MAX_HEADER_FIELD_KB,
        },
        "max_request_headers_kb": MAX_REQUEST_HEADERS_KB,
        "common_http_protocol_options": {
            "idle_timeout": CONNECTION_IDLE_TIMEOUT,
            "max_headers_count": MAX_HEADERS_COUNT,
        },
        "stream_idle_timeout": STREAM_IDLE_TIMEOUT,
        "route_config": {
            "name": "bourse",
            "virtual_hosts": [{"name": "bourse", "domains": ["*"], "routes": [
                _route(SESSION_CLUSTER, {"path": SESSION_PATH}), _route()]}],
        },
        "http_filters": [
            {"name": "envoy.filters.http.grpc_web",
             "typed_config": {"@type": _type("envoy.extensions.filters.http.grpc_web.v3.GrpcWeb")}},
            {"name": "envoy.filters.http.grpc_stats",
             "typed_config": {
                 "@type": _type("envoy.extensions.filters.http.grpc_stats.v3.FilterConfig"),
                 "emit_filter_state": True,
                 "stats_for_all_methods": True,
             }},
            {"name": "envoy.filters.http.router",
             "typed_config": {"@type": _type("envoy.extensions.filters.http.router.v3.Router")}},
        ],
    }
    if health_path is not None:
        manager["http_filters"].insert(0, _health_check_filter(health_path))
    if access_log is not None:
        manager["access_log"] = _access_log(access_log)
    chain: dict = {}
    if tls is not None:
        chain["transport_socket"] = _tls(*tls)
    return {
        "name": "grpc_ingress",
        "address": _address(listen_host, listen_port),
        "filter_chains": [{**chain, "filters": [
            {"name": "envoy.filters.network.connection_limit",
             "typed_config": {
                 "@type": _type("envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit"),
                 "stat_prefix": "grpc_ingress_connections",
                 "max_connections": MAX_CONNECTIONS,
             }},
            {"name": "envoy.filters.network.http_connection_manager", "typed_config": manager},
        ]}],
    }


ADMIN_CLUSTER = "envoy_admin"


def _stats_listener(host: str, port: int) -> dict:
    """Envoy's Prometheus stats, and nothing else of its admin, at http://host:port/metrics:
    the admin itself (which can fail health checks and quit) stays on loopback."""
    manager = {
        "@type": _type("envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"),
        "stat_prefix": "stats",
        "codec_type": "AUTO",
        "route_config": {"name": "stats", "virtual_hosts": [{"name": "stats", "domains": ["*"], "routes": [{
            "match": {"path": "/metrics"},
            "route": {"cluster": ADMIN_CLUSTER, "prefix_rewrite": "/stats/prometheus"},
        }]}]},
        "http_filters": [{"name": "envoy.filters.http.router",
                          "typed_config": {"@type": _type("envoy.extensions.filters.http.router.v3.Router")}}],
    }
    return {"name": "stats", "address": _address(host, port), "filter_chains": [{"filters": [
        {"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}]}


def _admin_cluster(admin_port: int) -> dict:
    return {"name": ADMIN_CLUSTER, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": ADMIN_CLUSTER, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": _address("127.0.0.1", admin_port)}}]}]}}


def _cluster(backends: list[tuple[str, int]], name: str = CLUSTER, lb_policy: str = "LEAST_REQUEST") -> dict:
    static = all(_is_ip(host) for host, _ in backends)
    cluster = {
        "name": name,
        "type": "STATIC" if static else "STRICT_DNS",
        "connect_timeout": "1s",
        "lb_policy": lb_policy,
        # Without explicit HTTP/2 Envoy speaks HTTP/1.1 upstream and every gRPC call fails.
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _type("envoy.extensions.upstreams.http.v3.HttpProtocolOptions"),
                "explicit_http_config": {"http2_protocol_options": {"max_concurrent_streams": 1024}},
            },
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": _address(host, port)}} for host, port in backends
            ]}],
        },
        # A draining backend answers NOT_SERVING: two failed checks (about 2 s) take it
        # out of rotation before it stops; one good check brings it back.
        "health_checks": [{
            "timeout": "1s",
            "interval": "1s",
            "no_traffic_interval": "1s",
            "unhealthy_threshold": 2,
            "healthy_threshold": 1,
            "grpc_health_check": {"service_name": HEALTH_SERVICE},
        }],
        # The default allows only 3 concurrent retries: when a backend dies under load,
        # every in-flight call fails at once and most would be refused a retry (UO flag).
        "circuit_breakers": {"thresholds": [{
            "priority": "DEFAULT",
            "max_connections": 10000,
            "max_pending_requests": 10000,
            "max_requests": 10000,
            "max_retries": 1000,
        }]},
        # Ejects a backend that fails calls faster than health checks notice (SIGKILL).
        "outlier_detection": {
            "consecutive_5xx": 5,
            "consecutive_gateway_failure": 2,
            "interval": "1s",
            "base_ejection_time": "5s",
            "max_ejection_percent": 50,
        },
    }
    if not static:
        cluster["dns_lookup_family"] = "V4_ONLY"
    return cluster


def render(
    listen_port: int,
    admin_port: int,
    backends: list[tuple[str, int]],
    access_log: str | None = None,
    listen_host: str = "0.0.0.0",
    health_path: str | None = None,
    tls: tuple[str, str] | None = None,
    stats_port: int | None = None,
) -> dict:
    """The complete bootstrap. access_log: None (off), "-" (stdout) or a file path.
    stats_port: Envoy's Prometheus stats also at http://<listen_host>:<stats_port>/metrics
    (for scrapers that cannot reach the loopback admin, as in Kubernetes).
    tls: (certificate chain file, private key file): clients connect with TLS (HTTP/2
    by ALPN), else in plaintext (h2c).

    A backend given by host name (not IP) makes the cluster STRICT_DNS: every address
    the name resolves to is one backend, re-resolved every few seconds, so a Kubernetes
    headless Service name follows its replicas as they scale. health_path (e.g.
    "/healthz"): Envoy answers that HTTP path itself, for orchestrators' probes.
    """
    if not backends:
        raise ValueError("at least one backend is required")
    for host, port in backends:
        if not host or not 0 < int(port) < 65536:
            raise ValueError(f"bad backend {host}:{port}")
    if health_path is not None and not health_path.startswith("/"):
        raise ValueError(f"health_path must start with '/', got {health_path!r}")
    listeners = [_listener(listen_host, listen_port, access_log, health_path, tls)]
    clusters = [_cluster(backends), _cluster(backends, SESSION_CLUSTER, "ROUND_ROBIN")]
    if stats_port is not None:
        listeners.append(_stats_listener(listen_host, stats_port))
        clusters.append(_admin_cluster(admin_port))
    return {
        "node": {"id": "bourse-edge", "cluster": "bourse"},
        "admin": {"address": _address("127.0.0.1", admin_port)},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


def http_filters(bootstrap: dict) -> list[dict]:
    """The HTTP filters of the (first) listener's connection manager."""
    listener = bootstrap["static_resources"]["listeners"][0]
    [manager] = [f for f in listener["filter_chains"][0]["filters"]
                 if f["name"] == "envoy.filters.network.http_connection_manager"]
    return manager["typed_config"]["http_filters"]


def dumps(config: dict) -> str:
    return json.dumps(config, indent=2) + "\n"


def parse_backend(spec: str) -> tuple[str, int]:
    host, sep, port = spec.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"bad backend {spec!r}: want host:port")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.envoy.config", description=__doc__.split("\n")[0])
    parser.add_argument("--listen-port", type=int, default=8080)
    parser.add_argument("--listen-host", default="0.0.0.0")
    parser.add_argument("--admin-port", type=int, default=9901)
    parser.add_argument("--backend", type=parse_backend, action="append", required=True,
                        help="host:port of an order service replica (repeat)")
    parser.add_argument("--access-log", default=None, help="'-' for stdout or a file path; off by default")
    parser.add_argument("--health-path", default=None, help="HTTP path Envoy answers itself (e.g. /healthz); off by default")
    parser.add_argument("--tls-certificate", default=None, help="PEM certificate chain: clients connect with TLS")
    parser.add_argument("--tls-key", default=None, help="PEM private key of --tls-certificate")
    parser.add_argument("-o", "--output", default="-", help="file to write ('-' = stdout)")
    args = parser.parse_args(argv)
    if bool(args.tls_certificate) != bool(args.tls_key):
        parser.error("--tls-certificate and --tls-key go together")
    tls = (args.tls_certificate, args.tls_key) if args.tls_certificate else None
    text = dumps(render(args.listen_port, args.admin_port, args.backend, args.access_log,
                        listen_host=args.listen_host,
                        health_path=args.health_path, tls=tls))
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
