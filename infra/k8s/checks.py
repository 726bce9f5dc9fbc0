"""Consistency of rendered manifests with the services' own code.

`problems(objects)` runs every check on a list of Kubernetes objects (dicts, e.g. the
files of infra/k8s/base) and returns what is wrong, one sentence each, [] when nothing
is. The services' settings are computed by the services' code (Settings.from_env) from
exactly the environment each pod would get, the shard index and node id derived by
the image's entrypoint, so a setting the code needs and the pod lacks, an address that
reaches no Service or the wrong shard, or a probe on a port nobody listens on is found
here rather than in a cluster.

The checks live by concern: checks_wiring.py (objects refer to each other, probes,
migrations first), checks_services.py (each service's settings, by its own code, in its
pod), checks_envoy.py (Envoy's config, backends and drain). They read the objects
through cluster_model.py and run the services' code through service_code.py.
"""

from __future__ import annotations

from infra.k8s.checks_envoy import check_envoy
from infra.k8s.checks_services import check_services
from infra.k8s.checks_wiring import check_migration, check_probes, check_references
from infra.k8s.cluster_model import Manifests
from infra.k8s.service_code import service_variables

# The tests read this as checks.service_variables (that the variables the checks rely on are found).
__all__ = ["problems", "service_variables"]


def problems(objects: list[dict]) -> list[str]:
    m = Manifests(objects)
    found = []
    for check in (check_references, check_probes, check_services, check_envoy, check_migration):
        found += check(m)
    return list(dict.fromkeys(found))  # one report of each, in order
