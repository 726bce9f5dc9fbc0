"""The Grafana dashboard (infra/grafana/bourse.json) asks only for metrics the services
export (services/common/metrics.py), by the labels they carry."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from services.common import metrics

DASHBOARD = Path(__file__).resolve().parents[1] / "bourse.json"
# A histogram's series are its name plus these.
SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def exported() -> dict[str, set[str]]:
    """Series name -> its labels, for every metric services/common/metrics.py defines."""
    defined = [v for v in vars(metrics).values() if isinstance(v, MetricWrapperBase)]
    defined += list(metrics.SHARD_GAUGES.values())
    series: dict[str, set[str]] = {}
    for metric in defined:
        labels = set(metric._labelnames)  # prometheus_client keeps them here
        if metric._type == "histogram":
            for suffix in SUFFIXES:
                series[metric._name + suffix] = labels | {"le"}
        elif metric._type == "counter":  # its name is kept without the _total it is exposed with
            series[metric._name + "_total"] = labels
        else:
            series[metric._name] = labels
    return series


def problems(dashboard: dict) -> list[str]:
    """What in the dashboard's queries the services do not export."""
    series, found = exported(), []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr, title = target["expr"], panel["title"]
            names = set(re.findall(r"\bbourse_[a-z_]+", expr))
            if not names:
                found.append(f"{title}: asks for no bourse metric")
            missing = names - set(series)
            found += [f"{title}: {name} is not exported" for name in sorted(missing)]
            # Labels in selectors and in by (...) clauses must be the series' own.
            used = set(re.findall(r"(\w+)\s*=", expr)) | {
                label.strip() for group in re.findall(r"by \(([^)]*)\)", expr) for label in group.split(",")}
            allowed = set().union(*(series[name] for name in names - missing)) if names - missing else set()
            if used - allowed:
                found.append(f"{title}: labels {sorted(used - allowed)} are not on {sorted(names)}")
    return found


def test_every_panel_asks_for_exported_series_by_their_labels():
    dashboard = json.loads(DASHBOARD.read_text())
    assert len(dashboard["panels"]) >= 6
    assert problems(dashboard) == []


def test_the_check_catches_an_unknown_metric_and_a_label_it_does_not_carry():
    broken = {"panels": [{"title": "x", "targets": [
        {"expr": "rate(bourse_orders_per_second[1m])"},
        {"expr": "sum by (symbol) (rate(bourse_group_commit_commands_count[1m]))"},
        {"expr": "bourse_shard_sequence{shard=\"0\"}"},
    ]}]}
    assert problems(broken) == ["x: bourse_orders_per_second is not exported",
                                "x: labels ['symbol'] are not on ['bourse_group_commit_commands_count']"]
