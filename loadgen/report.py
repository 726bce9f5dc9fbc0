"""Numbers of a load run: latency summaries, rates, CPU per process, JSON and a plot."""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field

import psutil
from hdrh.histogram import HdrHistogram

# Microseconds: 1 us .. 120 s at 3 significant digits.
LOWEST_US, HIGHEST_US, DIGITS = 1, 120_000_000, 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def record(histogram: HdrHistogram, micros: float) -> None:
    histogram.record_value(min(max(int(micros), LOWEST_US), HIGHEST_US))


def latency_summary(histogram: HdrHistogram) -> dict[str, float]:
    """p50/p90/p99/p99.9/max/mean in milliseconds (zeros for an empty histogram)."""
    if histogram.get_total_count() == 0:
        return {"count": 0, "mean_ms": 0.0, "p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "p99_9_ms": 0.0,
                "max_ms": 0.0}
    summary: dict[str, float] = {"count": histogram.get_total_count(),
                                 "mean_ms": round(histogram.get_mean_value() / 1000, 3)}
    for p in PERCENTILES:
        key = "p" + f"{p:g}".replace(".", "_") + "_ms"
        summary[key] = histogram.get_value_at_percentile(p) / 1000
    summary["max_ms"] = histogram.get_max_value() / 1000
    return summary


def percentile_curve(histogram: HdrHistogram, points: int = 200) -> list[tuple[float, float]]:
    """(percentile, latency ms) from p0 to p99.99 spaced on a log(1/(1-p)) axis."""
    if histogram.get_total_count() == 0:
        return []
    curve = []
    for i in range(points + 1):
        # x in 0..4 decades of "nines": p = 100 * (1 - 10**-x)
        p = 100.0 * (1 - 10 ** (-4.0 * i / points))
        curve.append((p, histogram.get_value_at_percentile(p) / 1000))
    return curve


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def error_rate(errors: int, calls: int) -> float:
    return errors / calls if calls else 0.0


class CpuMeter:
    """CPU seconds (user + system) of named processes over a run, each with its whole
    process tree: PostgreSQL does its work in backends forked from the postmaster, so
    live descendants count, and reaped ones through the parent's children times."""

    def __init__(self, pids: dict[str, int]):
        self.pids = dict(pids)
        self.procs: dict[str, psutil.Process] = {}
        self.start: dict[str, dict[int, float]] = {}
        for name, pid in self.pids.items():
            try:
                proc = psutil.Process(pid)
                self.procs[name] = proc
                self.start[name] = self._tree_cpu(proc)
            except psutil.Error:
                pass  # reported as None at the end

    @staticmethod
    def _cpu(proc: psutil.Process) -> float:
        t = proc.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    @classmethod
    def _tree_cpu(cls, proc: psutil.Process) -> dict[int, float]:
        tree = {proc.pid: cls._cpu(proc)}
        for child in proc.children(recursive=True):
            try:
                t = child.cpu_times()
                tree[child.pid] = t.user + t.system
            except psutil.Error:
                pass  # exited meanwhile: its time shows in the parent's children times
        return tree

    def stop(self) -> dict[str, float | None]:
        used: dict[str, float | None] = {}
        for name in self.pids:
            proc = self.procs.get(name)
            try:
                if proc is None:
                    raise psutil.NoSuchProcess(self.pids[name])
                now, before = self._tree_cpu(proc), self.start[name]
                used[name] = round(sum(cpu - before.get(pid, 0.0) for pid, cpu in now.items()), 3)
            except psutil.Error:
                used[name] = None  # the process died during the run
        return used


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


@dataclass
class Timeline:
    """Per-second counts since the start of the run, for the orders/s plot, and each
    second's slowest acknowledged order (a tail made of a few stalls shows as spikes)."""

    acked: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    slowest_us: Counter = field(default_factory=Counter)

    def add(self, second: float, ok: bool, latency_us: float = 0.0) -> None:
        at = int(second)
        (self.acked if ok else self.errors)[at] += 1
        if latency_us > self.slowest_us[at]:
            self.slowest_us[at] = latency_us

    def series(self, duration: float) -> dict[str, list[int]]:
        seconds = max([int(math.ceil(duration)), *self.acked, *self.errors], default=0)
        return {"acked": [self.acked.get(s, 0) for s in range(seconds)],
                "errors": [self.errors.get(s, 0) for s in range(seconds)],
                "slowest_ms": [round(self.slowest_us.get(s, 0) / 1000, 1) for s in range(seconds)]}


def cpu_summary(cpu: dict[str, float | None], orders: int) -> dict:
    total = sum(v for v in cpu.values() if v is not None)
    return {
        "seconds": cpu,
        "total_seconds": round(total, 3),
        "us_per_order": round(total * 1e6 / orders, 1) if orders else None,
    }


def write_json(report: dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
        f.write("\n")


def plot(path: str, curves: dict[str, list[tuple[float, float]]], per_second: list[int], title: str) -> None:
    """Latency by percentile (log 'nines' axis) and acknowledged orders per second."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    ticks = [0, 90, 99, 99.9, 99.99]
    for label, curve in curves.items():
        if curve:
            xs = [-math.log10(1 - p / 100) if p < 100 else 4 for p, _ in curve]
            left.plot(xs, [ms for _, ms in curve], label=label)
    left.set_xticks([-math.log10(1 - p / 100) for p in ticks])
    left.set_xticklabels([f"p{p:g}" for p in ticks])
    left.set_ylabel("latency (ms)")
    left.set_title("latency by percentile")
    left.grid(True, alpha=0.3)
    left.legend()
    right.plot(range(len(per_second)), per_second, drawstyle="steps-post")
    right.set_xlabel("second")
    right.set_ylabel("orders acknowledged / s")
    right.set_title("throughput")
    right.grid(True, alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def text_lines(report: dict) -> list[str]:
    """The human summary of a report (plain lines, for logs and the console)."""
    lines = [
        f"run {report['run_id']}: {report['clients']} clients, {report['elapsed_s']:.1f} s, target {report['target']}",
        f"orders/s: {report['orders_per_s']:.1f}   calls/s: {report['calls_per_s']:.1f}   "
        f"(orders acked {report['orders_acked']}, calls {report['calls']})",
    ]
    lines += open_loop_lines(report.get("open_loop"))
    for name, lat in report["latency"].items():
        lines.append(
            f"latency {name} ms: p50 {lat['p50_ms']:.2f}  p90 {lat['p90_ms']:.2f}  p99 {lat['p99_ms']:.2f}  "
            f"p99.9 {lat['p99_9_ms']:.2f}  max {lat['max_ms']:.2f}  (n={lat['count']})"
        )
    errors = report["errors"]
    lines.append(f"errors: {errors['total']} ({errors['rate'] * 100:.3f}%)" +
                 "".join(f"  {code}={n}" for code, n in sorted(errors["by_code"].items())))
    if report.get("expected_refusals"):
        lines.append("expected refusals: " + "  ".join(f"{k}={v}" for k, v in report["expected_refusals"].items()))
    cpu = report["cpu"]
    for name, seconds in cpu["seconds"].items():
        lines.append(f"cpu {name}: {'gone' if seconds is None else f'{seconds:.2f} s'}")
    lines.append(f"cpu total: {cpu['total_seconds']:.2f} s   per order: {cpu['us_per_order']} us   "
                 f"(loadgen itself: {report['loadgen_cpu_s']:.2f} s)")
    durability = report.get("durability")
    if durability is None:
        lines.append(report.get("durability_error") or "durability: not checked (no --db-url)")
    else:
        lines.append(f"durability: checked {durability['checked']} acked orders in {durability['databases']} "
                     f"databases; inconsistent: {durability['inconsistent']}")
        lines.append(f"lost: {durability['lost']}")
    return lines


def open_loop_lines(summary: dict | None) -> list[str]:
    """The open-loop part of the summary (nothing for a closed-loop run)."""
    if not summary:
        return []
    lag = summary["start_lag"]
    lines = [
        f"open loop ({summary['arrivals']}): intended {summary['intended_rate']:g} calls/s   "
        f"offered {summary['offered_rate']:.1f}   achieved {summary['achieved_rate']:.1f} (answered in the window)",
        f"scheduled {summary['scheduled']}  started {summary['started']}  dropped {summary['dropped']} "
        f"(max in flight {summary['max_in_flight']}, peak {summary['peak_in_flight']})   "
        f"start lag ms: p99 {lag['p99_ms']:.2f}  max {lag['max_ms']:.2f}",
        "latency counted from each call's planned start (queueing included)",
    ]
    if summary["dropped"]:
        lines.append(f"WARNING: {summary['dropped']} calls were due but not sent (in-flight cap reached)")
    return lines
