"""The Kubernetes manifests: valid against the real Kubernetes schemas, committed as
rendered, consistent with the services' code, and an Envoy config Envoy accepts.

Every check is also shown failing on a deliberately broken render, so a check that
passes is known to look at something.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from infra.envoy.binary import envoy_binary
from infra.k8s import checks, entrypoint, render
from infra.k8s.objects_trading import ENVOY_TLS_DIR
from infra.local.tls import local_tls
from services.common.config import DEFAULT_SHARD_RANGES, ShardMap

BASE = Path(__file__).absolute().parent.parent / "base"
# The oldest release with GA gRPC probes, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.27", "1.37")
LAYOUTS = {
    "default": render.Layout(),
    "four-shards-two-databases": render.Layout(shard_ranges="A-F,G-L,M-R,S-Z", db_shards=2, namespace="exchange",
                                               image="registry.example/bourse:1.0", order_replicas=3,
                                               order_max_replicas=20, drain_ms=8000),
    "one-shard": render.Layout(shard_ranges="A-Z", envoy_replicas=1, order_replicas=1),
}


def objects_of(layout: render.Layout) -> list[dict]:
    return [o for objects in render.render(layout).values() for o in objects]


def load(directory: Path) -> dict[str, list[dict]]:
    return {path.name: [o for o in yaml.safe_load_all(path.read_text()) if o] for path in sorted(directory.glob("*.yaml"))}


# ----- (a) the Kubernetes schemas


@pytest.mark.timeout(120)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", LAYOUTS)
def test_every_object_matches_the_kubernetes_schema(name, version):
    objects = objects_of(LAYOUTS[name])
    kinds = set()
    for obj in objects:
        # strict: an unknown (e.g. misspelt or misplaced) field is an error too.
        kubernetes_validate.validate(obj, version, strict=True)
        kinds.add(obj["kind"])
    assert kinds >= {"Namespace", "ConfigMap", "Secret", "Service", "StatefulSet", "Deployment", "Job",
                     "HorizontalPodAutoscaler", "PodDisruptionBudget"}


@pytest.mark.parametrize("break_it", [
    lambda o: o["spec"].__setitem__("replicas", "three"),
    lambda o: o["spec"]["template"]["spec"]["containers"][0].__setitem__("readinessProbes", {}),
    lambda o: o["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["grpc"].__setitem__("port", "grpc"),
], ids=["string-replicas", "misspelt-field", "named-grpc-probe-port"])
def test_the_schema_check_catches_a_bad_object(break_it):
    statefulset = next(o for o in objects_of(render.Layout()) if o["kind"] == "StatefulSet"
                       and o["metadata"]["name"] == "matching")
    kubernetes_validate.validate(statefulset, KUBERNETES_VERSIONS[-1], strict=True)
    break_it(statefulset)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSIONS[-1], strict=True)


# ----- (b) no drift between the committed base/ and the renderer


def test_committed_base_is_a_fresh_render():
    fresh = render.texts(render.Layout())
    committed = {path.name: path.read_text() for path in BASE.glob("*.yaml")}
    assert sorted(committed) == sorted(fresh), "re-render: python -m infra.k8s.render --out infra/k8s/base"
    for name, text in fresh.items():
        assert committed[name] == text, f"{name} differs from a fresh render: python -m infra.k8s.render --out infra/k8s/base"


def test_the_drift_check_catches_an_edit(tmp_path):
    render.write(tmp_path, render.Layout())
    assert {p.name: p.read_text() for p in tmp_path.glob("*.yaml")} == render.texts(render.Layout())
    (tmp_path / "matching.yaml").write_text((tmp_path / "matching.yaml").read_text().replace("replicas: 3", "replicas: 4"))
    assert {p.name: p.read_text() for p in tmp_path.glob("*.yaml")} != render.texts(render.Layout())


def test_kustomization_lists_every_file_once():
    files = load(BASE)
    kustomization = files.pop("kustomization.yaml")[0]
    assert kustomization["resources"] == list(render.render(render.Layout()))
    assert sorted(kustomization["resources"]) == sorted(files)


def test_render_cli_writes_the_directory_and_removes_stale_files(tmp_path, capsys):
    (tmp_path / "old.yaml").write_text("kind: Gone\n")
    assert render.main(["--out", str(tmp_path), "--shard-ranges", "A-M,N-Z", "--db-shards", "1"]) == 0
    assert "2 matching shards, 1 PostgreSQL shards" in capsys.readouterr().out
    files = load(tmp_path)
    assert "old.yaml" not in files
    assert checks.problems([o for name, objs in files.items() if name != "kustomization.yaml" for o in objs]) == []
    with pytest.raises(SystemExit):
        render.main(["--out", str(tmp_path), "--shard-ranges", "A-G,P-Z"])  # H-O would belong to no shard


# ----- (c) consistency with the services' code


def test_default_layout_is_the_shard_maps():
    objects = load(BASE)
    statefulsets = {o["metadata"]["name"]: o for objs in objects.values() for o in objs if o["kind"] == "StatefulSet"}
    config = next(o for o in objects["config.yaml"] if o["kind"] == "ConfigMap")["data"]
    assert config["BOURSE_SHARD_RANGES"] == DEFAULT_SHARD_RANGES
    assert statefulsets["matching"]["spec"]["replicas"] == len(ShardMap.parse(DEFAULT_SHARD_RANGES)) == 3
    assert statefulsets["postgres"]["spec"]["replicas"] == 3
    assert len(config["BOURSE_DB_URLS"].split(",")) == 3


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", LAYOUTS)
def test_manifests_agree_with_the_services_code(name):
    assert checks.problems(objects_of(LAYOUTS[name])) == []


def test_committed_base_agrees_with_the_services_code():
    files = load(BASE)
    assert checks.problems([o for name, objs in files.items() if name != "kustomization.yaml" for o in objs]) == []


def find(objects, kind, name):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def container(objects, kind, name, index=0):
    return find(objects, kind, name)["spec"]["template"]["spec"]["containers"][index]


def config(objects):
    return find(objects, "ConfigMap", render.CONFIG)["data"]


def envoy_json(objects, change):
    data = find(objects, "ConfigMap", render.ENVOY_CONFIG)["data"]
    bootstrap = json.loads(data["envoy.json"])
    change(bootstrap)
    data["envoy.json"] = json.dumps(bootstrap)


def drop_env(c, name):
    c["env"] = [e for e in c["env"] if e["name"] != name]


def replace_selector(objects, service, pod):
    find(objects, "Service", service)["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] = pod


BREAKAGES = {
    # a matching shard too few for the shard map
    "fewer-matching-pods": (lambda o: find(o, "StatefulSet", "matching")["spec"].__setitem__("replicas", 2),
                            "the matching StatefulSet runs 2 shards but BOURSE_SHARD_RANGES has 3"),
    "more-matching-pods": (lambda o: find(o, "StatefulSet", "matching")["spec"].__setitem__("replicas", 4),
                           "the service refuses its settings: BOURSE_SHARD_INDEX must be 0-2, got 3"),
    "ranges-changed-by-hand": (lambda o: config(o).__setitem__("BOURSE_SHARD_RANGES", "A-M,N-Z"),
                               "BOURSE_MATCHING_ADDRS has 3 addresses but BOURSE_SHARD_RANGES has 2 shards"),
    "symbol-in-no-shard": (lambda o: config(o).__setitem__("BOURSE_SHARD_RANGES", "A-G,H-O,P-Y"),
                           "symbol ZM is owned by matching shards [], not exactly one"),
    "missing-shard-service": (lambda o: o.remove(find(o, "Service", "matching-1")),
                              "BOURSE_MATCHING_ADDRS[1] matching-1:50060: no Service named matching-1"),
    "shard-service-to-wrong-pod": (lambda o: replace_selector(o, "matching-1", "matching-2"),
                                   "BOURSE_MATCHING_ADDRS[1] matching-1:50060 reaches matching-2, shard 2"),
    "shard-service-wrong-port": (lambda o: find(o, "Service", "matching-0")["spec"]["ports"][0].__setitem__("port", 50061),
                                 "BOURSE_MATCHING_ADDRS[0] matching-0:50060: Service matching-0 has no port 50060"),
    "required-variable-unset": (lambda o: config(o).pop("BOURSE_DB_URLS"),
                                "BOURSE_DB_URLS is read without a default but not set"),
    "default-address-is-loopback": (lambda o: config(o).pop("BOURSE_PERSISTENCE_ADDR"),
                                    "persistence_address is 127.0.0.1:50070: loopback"),
    "misspelt-variable": (lambda o: config(o).__setitem__("BOURSE_MATCHING_ADDRESSES", "x"),
                          "BOURSE_MATCHING_ADDRESSES is set but no service reads it"),
    "listens-on-loopback": (lambda o: drop_env(container(o, "StatefulSet", "order"), "BOURSE_ORDER_ADDR"),
                            "listens on 127.0.0.1:50051, not on every interface"),
    "probe-on-unexposed-port": (lambda o: container(o, "Deployment", "persistence")["readinessProbe"]["grpc"]
                                .__setitem__("port", 50071), "readinessProbe port 50071 is not a port the container exposes"),
    "probe-not-grpc": (lambda o: container(o, "StatefulSet", "order").__setitem__(
        "readinessProbe", {"tcpSocket": {"port": 50051}}), "readinessProbe is not a gRPC health probe"),
    "missing-secret-key": (lambda o: find(o, "Secret", render.SECRETS)["stringData"].pop("POSTGRES_PASSWORD"),
                           "refers to Secret bourse-secrets key POSTGRES_PASSWORD, which does not exist"),
    "grace-shorter-than-drain": (lambda o: find(o, "StatefulSet", "matching")["spec"]["template"]["spec"]
                                 .__setitem__("terminationGracePeriodSeconds", 5), "terminationGracePeriodSeconds 5 < 15"),
    "too-many-order-replicas": (lambda o: find(o, "HorizontalPodAutoscaler", "order")["spec"].__setitem__("maxReplicas", 600),
                                "maxReplicas beyond node ids 0-511"),
    "order-as-deployment": (lambda o: find(o, "StatefulSet", "order").__setitem__("kind", "Deployment"),
                            "cannot take an ordinal from pod name 'order-7d9f8-x2x4z'"),
    "database-url-to-missing-pod": (lambda o: config(o).__setitem__(
        "BOURSE_DB_URLS", config(o)["BOURSE_DB_URLS"].replace("postgres-2.", "postgres-3.")),
        "no pod postgres-3 of a StatefulSet governed by Service postgres"),
    "database-password-mismatch": (lambda o: drop_env(container(o, "Deployment", "persistence"), "PGPASSWORD"),
                                   "the password is not postgres-0's POSTGRES_PASSWORD"),
    "envoy-backend-wrong-port": (lambda o: envoy_json(o, lambda b: b["static_resources"]["clusters"][0]["load_assignment"]
                                                      ["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                                                      ["socket_address"].__setitem__("port_value", 50052)),
                                 "Service order has no port 50052"),
    "envoy-backend-not-headless": (lambda o: find(o, "Service", "order")["spec"].pop("clusterIP"),
                                   "is a ClusterIP Service: one virtual IP"),
    "envoy-probe-path": (lambda o: container(o, "Deployment", "envoy")["readinessProbe"]["httpGet"].__setitem__("path", "/ready"),
                         "Envoy readiness probes /ready, which its health_check filter does not answer"),
    "startup-probe-too-short": (lambda o: container(o, "StatefulSet", "matching")["startupProbe"].__setitem__("failureThreshold", 10),
                                "startupProbe gives up after 20 s, before the service's own startup wait of 60 s"),
    "envoy-grace-shorter-than-drain": (lambda o: find(o, "Deployment", "envoy")["spec"]["template"]["spec"]
                                       .__setitem__("terminationGracePeriodSeconds", 10), "Envoy terminationGracePeriodSeconds 10"),
    "envoy-without-prestop": (lambda o: container(o, "Deployment", "envoy").pop("lifecycle"), "no envoy-drain preStop hook"),
    "no-migration-before-persistence": (lambda o: find(o, "Deployment", "persistence")["spec"]["template"]["spec"]
                                        .pop("initContainers"), "persistence may start before the migrations"),
    "service-selects-nothing": (lambda o: find(o, "Service", "redis")["spec"]["selector"].__setitem__("app.kubernetes.io/component", "cache"),
                                "Service redis selects no pod"),
}


@pytest.mark.parametrize("name", BREAKAGES)
def test_checks_catch_a_broken_manifest(name):
    objects = copy.deepcopy(objects_of(render.Layout()))
    breakage, expected = BREAKAGES[name]
    breakage(objects)
    found = checks.problems(objects)
    assert any(expected in problem for problem in found), "\n".join(found) or "no problem found"


def test_every_env_var_without_default_is_known():
    """The reads the check relies on are found in the services' code (else it checks nothing)."""
    reads = checks.service_variables("persistence")
    assert reads["BOURSE_DB_URLS"] is False  # required: the code has no default
    assert reads["BOURSE_PERSISTENCE_ADDR"] is True
    assert {"BOURSE_MATCHING_ADDRS", "BOURSE_NODE_ID", "BOURSE_SHARD_RANGES"} <= set(
        checks.service_variables("order"))


@pytest.mark.parametrize("shard_ranges", ["A-G,P-Z", "A-G,H-O,N-Z,", "Z-A"])
def test_renderer_refuses_a_broken_layout(shard_ranges):
    with pytest.raises(ValueError):
        render.render(render.Layout(shard_ranges=shard_ranges))


def test_renderer_refuses_more_order_replicas_than_node_ids():
    with pytest.raises(ValueError):
        render.render(render.Layout(order_max_replicas=render.MAX_ORDER_REPLICAS + 1))


def test_every_container_command_is_one_the_entrypoint_knows():
    for obj in objects_of(render.Layout()):
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            spec = obj["spec"]["template"]["spec"]
            for c in [*spec.get("initContainers", []), *spec["containers"]]:
                if c["image"] == render.Layout().image:
                    assert c["args"][0] in entrypoint.COMMANDS, c["name"]


# ----- the Envoy config in the ConfigMap, by Envoy itself


def validate_envoy(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path), "--disable-hot-restart", "-l", "warn"],
                          check=False, capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(90)
def test_envoy_config_map_passes_envoy_validate(tmp_path):
    config_map = next(o for o in load(BASE)["envoy.yaml"] if o["kind"] == "ConfigMap")
    path = tmp_path / "envoy.json"
    # The TLS Secret's files, as the pod mounts them, made here for Envoy to load.
    files = local_tls(tmp_path / "tls")
    path.write_text(config_map["data"]["envoy.json"]
                    .replace(f"{ENVOY_TLS_DIR}/tls.crt", str(files.certificate))
                    .replace(f"{ENVOY_TLS_DIR}/tls.key", str(files.key)))
    result = validate_envoy(path)
    assert result.returncode == 0, result.stdout + result.stderr
    cluster = json.loads(path.read_text())["static_resources"]["clusters"][0]
    assert cluster["type"] == "STRICT_DNS"  # the order Service's name, resolved to every replica

    broken = json.loads(path.read_text())
    broken["static_resources"]["clusters"][0]["lb_policy"] = "LEAST_BUSY"
    path.write_text(json.dumps(broken))
    assert validate_envoy(path).returncode != 0


# ----- the entrypoint's share of the configuration


def test_entrypoint_takes_shard_index_and_node_id_from_the_pod_name():
    assert entrypoint.service_env("matching", {"POD_NAME": "matching-2"})["BOURSE_SHARD_INDEX"] == "2"
    assert entrypoint.service_env("order", {"HOSTNAME": "order-11"})["BOURSE_NODE_ID"] == "11"
    assert entrypoint.service_env("order", {"POD_NAME": "order-1", "BOURSE_NODE_ID": "7"})["BOURSE_NODE_ID"] == "7"
    assert "BOURSE_SHARD_INDEX" not in entrypoint.service_env("persistence", {"POD_NAME": "persistence-5d8-x"})
    with pytest.raises(SystemExit):
        entrypoint.service_env("matching", {"POD_NAME": "matching-7d9f8-x2x4z"})
    with pytest.raises(SystemExit):
        entrypoint.argv("nonsense", [])


def test_entrypoint_dry_run(capsys):
    assert entrypoint.main(["--dry-run", "matching"], {"POD_NAME": "matching-1"}) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["argv"][1:] == ["-m", "services.matching.main"]
    assert shown["env"] == {"BOURSE_SHARD_INDEX": "1"}
    assert entrypoint.main(["--dry-run", "envoy", "-c", "/etc/envoy/envoy.json"], {}) == 0
    assert json.loads(capsys.readouterr().out)["argv"][0] == envoy_binary()


def test_every_python_service_is_scraped_where_it_serves_its_metrics():
    """The ConfigMap's BOURSE_METRICS_ADDR, each service container's `metrics` port and
    its pod's prometheus.io annotations name the same port; Envoy's stats listener too."""
    objects = objects_of(render.Layout())
    config = next(o for o in objects if o["kind"] == "ConfigMap" and "BOURSE_METRICS_ADDR" in o.get("data", {}))
    port = int(config["data"]["BOURSE_METRICS_ADDR"].rpartition(":")[2])
    scraped = {}
    for workload in objects:
        if workload["kind"] not in ("Deployment", "StatefulSet"):
            continue
        template = workload["spec"]["template"]
        container = template["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        annotations = template["metadata"].get("annotations", {})
        if "metrics" in ports:
            assert ports["metrics"] == port
            assert (annotations["prometheus.io/scrape"], annotations["prometheus.io/port"],
                    annotations["prometheus.io/path"]) == ("true", str(port), "/metrics")
            scraped[workload["metadata"]["name"]] = True
        else:
            assert "prometheus.io/scrape" not in annotations
    assert set(scraped) >= {"order", "matching", "persistence", "envoy"}
