"""The stack's own metrics over a load run (issue 10: show them).

`Scraper` reads each process's /metrics every second in a thread of its own (off the
load generator's event loop) and keeps the matching shards' group-commit samples;
`series` turns them into per-second values per shard: group commits per second, mean
commands per commit, mean group-commit and database-commit time; `plot` draws them.
`hops` sums the whole run, hop by hop: the order replicas' batches to the matching
processes (round trip, commands) and each shard's group commits.
"""

from __future__ import annotations

import threading
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

KEPT = ("bourse_group_commit_commands", "bourse_group_commit_duration_seconds",
        "bourse_persistence_commit_duration_seconds", "bourse_order_batch_commands",
        "bourse_order_batch_duration_seconds")
# (time, {(process, sample, shard or, for a replica's batches, matching target): value})
Snapshot = tuple[float, dict[tuple[str, str, str], float]]


def parse(process: str, text: str) -> dict[tuple[str, str, str], float]:
    """The _sum and _count samples of KEPT, by (process, sample name, shard or target)."""
    kept = {}
    for family in text_string_to_metric_families(text):
        if family.name not in KEPT:
            continue
        for sample in family.samples:
            if sample.name.endswith(("_sum", "_count")):
                where = sample.labels.get("shard", sample.labels.get("target", ""))
                kept[(process, sample.name, where)] = sample.value
    return kept


class Scraper:
    def __init__(self, urls: dict[str, str], every_s: float = 1.0):
        self._urls, self._every = urls, every_s
        self._stop = threading.Event()
        self.snapshots: list[Snapshot] = []
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="stack-metrics", daemon=True)

    def start(self) -> Scraper:
        self._thread.start()
        return self

    def stop(self) -> list[Snapshot]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.snapshots

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            at, values = time.monotonic() - started, {}
            for process, url in self._urls.items():
                try:
                    with urllib.request.urlopen(url, timeout=2) as page:
                        values.update(parse(process, page.read().decode()))
                    values[(process, "up", "")] = 1.0  # scraped: a sample absent here is zero
                except OSError:
                    self.failures += 1  # a process restarting: its points are missing, no more
            self.snapshots.append((at, values))
            self._stop.wait(self._every)


def series(snapshots: list[Snapshot]) -> dict[str, dict[str, list]]:
    """Per shard ("process/shard"): each interval's end time and, over it, group commits
    per second, mean commands per commit and mean group-commit and database-commit ms."""
    out: dict[str, dict[str, list]] = {}
    for (t0, before), (t1, after) in zip(snapshots, snapshots[1:]):
        shards = {(process, shard) for process, name, shard in after if name == "bourse_group_commit_commands_count"}
        for process, shard in sorted(shards):
            def delta(name):
                """The sample's growth over the interval; None where it is not known (the
                process was not scraped before, or restarted and counts from zero again)."""
                key = (process, name, shard)
                if key not in before and (process, "up", "") not in before:
                    return None
                grown = after.get(key, 0.0) - before.get(key, 0.0)
                return grown if grown >= 0 else None

            commits = delta("bourse_group_commit_commands_count")
            if commits is None or t1 <= t0:
                continue
            line = out.setdefault(f"{process}/{shard}", {"time_s": [], "commits_per_s": [], "commands_per_commit": [],
                                                          "group_commit_ms": [], "database_commit_ms": []})
            line["time_s"].append(round(t1, 2))
            line["commits_per_s"].append(round(commits / (t1 - t0), 1))
            def mean(name, scale=1.0, places=1):
                total = delta(name)
                return round(total / commits * scale, places) if commits and total is not None else None

            line["commands_per_commit"].append(mean("bourse_group_commit_commands_sum"))
            line["group_commit_ms"].append(mean("bourse_group_commit_duration_seconds_sum", 1000, 2))
            line["database_commit_ms"].append(mean("bourse_persistence_commit_duration_seconds_sum", 1000, 2))
    return out


def hops(snapshots: list[Snapshot]) -> dict[str, dict[str, float]]:
    """Over the whole run (the first scrape to the last): "replica batches", every order
    replica's batches to the matching processes together, and "group commits shard N";
    each per_s, mean commands and mean ms (commits also the mean database ms). A process
    that restarted within the run counts from its restart."""
    if len(snapshots) < 2:
        return {}
    (t0, first), (t1, last) = snapshots[0], snapshots[-1]

    def grown(key, restarted: bool) -> float:
        return last.get(key, 0.0) - (0.0 if restarted else first.get(key, 0.0))

    members: dict[str, list[tuple[str, str]]] = {}  # label -> the (process, shard or target) it sums
    for process, name, where in last:
        if name == "bourse_order_batch_commands_count":
            members.setdefault("replica batches", []).append((process, where))
        elif name == "bourse_group_commit_commands_count":
            members.setdefault(f"group commits shard {where}", []).append((process, where))
    out: dict[str, dict[str, float]] = {}
    for label, summed in sorted(members.items()):
        prefix = "bourse_order_batch" if label == "replica batches" else "bourse_group_commit"

        def total(name: str, summed=summed, prefix=prefix) -> float:
            counts = ((process, f"{prefix}_commands_count", where) for process, where in summed)
            # A count that went down: that process restarted, and all its samples count from zero.
            return sum(grown((key[0], name, key[2]), last.get(key, 0.0) < first.get(key, 0.0)) for key in counts)

        count = total(f"{prefix}_commands_count")
        if not count or t1 <= t0:
            continue
        line = {"per_s": round(count / (t1 - t0), 1), "commands": round(total(f"{prefix}_commands_sum") / count, 1),
                "ms": round(total(f"{prefix}_duration_seconds_sum") / count * 1000, 2)}
        if prefix == "bourse_group_commit":
            line["database_ms"] = round(total("bourse_persistence_commit_duration_seconds_sum") / count * 1000, 2)
        out[label] = line
    return out


def plot(path: str, lines: dict[str, dict[str, list]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    for index, (name, line) in enumerate(sorted(lines.items())):
        color = f"C{index}"  # one color per shard in every panel
        axes[0].plot(line["time_s"], line["commits_per_s"], color=color, label=name)
        axes[1].plot(line["time_s"], line["commands_per_commit"], color=color, label=name)
        axes[2].plot(line["time_s"], line["group_commit_ms"], color=color, label=f"{name} group commit")
        axes[2].plot(line["time_s"], line["database_commit_ms"], color=color, linestyle="--",
                     label=f"{name} database commit")
    axes[0].set_ylabel("group commits / s")
    axes[1].set_ylabel("commands per commit")
    axes[2].set_ylabel("mean ms")
    axes[2].set_xlabel("seconds into the run")
    for axis in axes:
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
