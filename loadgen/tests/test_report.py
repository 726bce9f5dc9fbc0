"""Report maths, the durability comparison, the CLI parsing and the plot/JSON outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import pytest

from loadgen import durability, report
from loadgen.main import parse_args
from loadgen.workload import CANCELLED, FILLED, NEW, PARTIALLY_FILLED, REJECTED


def test_latency_summary_in_milliseconds():
    h = report.new_histogram()
    for us in range(1, 10001):  # 1 us .. 10 ms, uniform
        report.record(h, us)
    s = report.latency_summary(h)
    assert s["count"] == 10000
    assert s["p50_ms"] == pytest.approx(5.0, rel=0.01)
    assert s["p90_ms"] == pytest.approx(9.0, rel=0.01)
    assert s["p99_ms"] == pytest.approx(9.9, rel=0.01)
    assert s["p99_9_ms"] == pytest.approx(9.99, rel=0.01)
    assert s["max_ms"] == pytest.approx(10.0, rel=0.01)
    assert s["mean_ms"] == pytest.approx(5.0, rel=0.01)


def test_empty_histogram_and_clamping():
    assert report.latency_summary(report.new_histogram())["p99_ms"] == 0.0
    h = report.new_histogram()
    report.record(h, 0.2)  # below 1 us -> 1 us
    report.record(h, 10**12)  # beyond range -> clamped, not an exception
    assert h.get_total_count() == 2
    assert report.percentile_curve(report.new_histogram()) == []
    curve = report.percentile_curve(h, points=10)
    assert len(curve) == 11 and curve[0][0] == 0.0 and curve[-1][0] == pytest.approx(99.99)


def test_rates_and_cpu_per_order():
    assert report.rate(5000, 2.0) == 2500.0
    assert report.rate(10, 0) == 0.0
    assert report.error_rate(0, 0) == 0.0
    assert report.error_rate(1, 200) == 0.005
    cpu = report.cpu_summary({"envoy": 1.5, "order0": 2.5, "gone": None}, orders=20000)
    assert cpu["total_seconds"] == 4.0
    assert cpu["us_per_order"] == 200.0
    assert report.cpu_summary({}, 0)["us_per_order"] is None


def test_cpu_meter_measures_a_busy_child():
    child = subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<0.5: pass"])
    try:
        meter = report.CpuMeter({"busy": child.pid, "missing": 2**22 + 12345})
        child.wait(timeout=10)
        used = meter.stop()
    finally:
        child.kill()
    assert used["missing"] is None
    # Reaped: psutil may no longer see it, which is reported as None, not a crash.
    assert used["busy"] is None or used["busy"] >= 0


def test_cpu_meter_on_self():
    meter = report.CpuMeter({"me": os.getpid()})
    started = time.process_time()
    while time.process_time() - started < 0.1:  # CPU time, not wall time: same on a loaded machine
        pass
    assert meter.stop()["me"] >= 0.05


def test_timeline_series():
    t = report.Timeline()
    for second, latency_us in ((0.1, 900), (0.5, 2500), (1.2, 700), (3.9, 40_000)):
        t.add(second, ok=True, latency_us=latency_us)
    t.add(1.0, ok=False)
    assert t.series(4.0) == {"acked": [2, 1, 0, 1], "errors": [0, 1, 0, 0], "slowest_ms": [2.5, 0.7, 0, 40.0]}
    assert t.series(5.5)["acked"] == [2, 1, 0, 1, 0, 0]


@pytest.mark.parametrize("acked, stored, ok", [
    ((NEW, 0), (NEW, 0), True),
    ((NEW, 0), (FILLED, 5), True),
    ((NEW, 0), (CANCELLED, 0), True),
    ((PARTIALLY_FILLED, 2), (PARTIALLY_FILLED, 3), True),
    ((PARTIALLY_FILLED, 2), (NEW, 0), False),
    ((PARTIALLY_FILLED, 2), (FILLED, 1), False),
    ((FILLED, 5), (FILLED, 5), True),
    ((FILLED, 5), (CANCELLED, 5), False),
    ((CANCELLED, 1), (CANCELLED, 1), True),
    ((CANCELLED, 1), (CANCELLED, 0), False),
    ((REJECTED, 0), (REJECTED, 0), True),
    ((FILLED, 5), ("ORDER_STATUS_FILLED", 5), True),
    ((NEW, 0), ("CANCELLED", 0), True),
])
def test_consistency_rules(acked, stored, ok):
    assert durability.consistent(acked, durability.status_number(stored[0]), stored[1]) is ok


def test_compare_counts_lost_and_inconsistent():
    acked = {1: (NEW, 0), 2: (FILLED, 3), 3: (FILLED, 3), 4: (NEW, 0)}
    stored = {1: (FILLED, 4), 2: (FILLED, 3), 3: (NEW, 0)}
    result = durability.compare(acked, stored, databases=3)
    assert (result.checked, result.lost, result.inconsistent) == (4, 1, 1)
    assert result.lost_examples == [4]
    assert result.inconsistent_examples[0]["order_id"] == 3
    assert result.as_dict()["databases"] == 3


def test_a_database_that_cannot_be_read_fails_the_check_instead_of_crashing_or_passing(monkeypatch):
    """The abuse probe: with the stack down, the check crashed with a traceback. It now
    waits for a restarting database, then says plainly that nothing was checked."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(durability, "FETCH_PATIENCE_S", 1)
    started = time.monotonic()
    with pytest.raises(durability.CheckFailed, match="could not be read"):
        durability.check([f"postgresql://postgres@127.0.0.1:{port}/nothing"], {1: (NEW, 0)})
    assert time.monotonic() - started < 10
    lines = report.text_lines({**_minimal_report(), "durability": None,
                               "durability_error": "durability not checked: the databases could not be read (x)"})
    assert "durability not checked: the databases could not be read (x)" in lines


def test_plain_url():
    assert durability.plain_url("postgresql+psycopg://u@h:5/db") == "postgresql://u@h:5/db"
    assert durability.plain_url("postgresql://u@h:5/db") == "postgresql://u@h:5/db"


def test_cli_parsing(monkeypatch):
    monkeypatch.setenv("BOURSE_SYMBOLS", "AAPL IBM")
    args = parse_args(["--clients", "3", "--api-keys", "k1, k2", "--pid", "envoy=12", "--pid", "order0=13",
                       "--db-url", "postgresql://a", "--db-url", "postgresql://b"])
    assert args.keys == ["k1", "k2"]
    assert args.pids == {"envoy": 12, "order0": 13}
    assert args.symbol_list == ("AAPL", "IBM")
    assert args.channels == 3 and args.duration == 60.0 and args.target == "127.0.0.1:8080"
    assert parse_args(["--symbols", "ZM,KO KO"]).symbol_list == ("KO", "ZM")
    with pytest.raises(SystemExit):
        parse_args(["--pid", "envoy"])
    with pytest.raises(SystemExit):
        parse_args(["--clients", "0"])


def _minimal_report() -> dict:
    h = report.new_histogram()
    for us in (100, 200, 5000):
        report.record(h, us)
    return {
        "run_id": "r", "clients": 2, "elapsed_s": 1.0, "target": "t", "orders_per_s": 3.0, "calls_per_s": 3.0,
        "orders_acked": 3, "calls": 3, "latency": {"all": report.latency_summary(h)},
        "errors": {"total": 0, "rate": 0.0, "by_code": {}}, "expected_refusals": {},
        "cpu": report.cpu_summary({"envoy": 0.01}, 3), "loadgen_cpu_s": 0.1,
        "durability": {"checked": 3, "databases": 1, "lost": 0, "inconsistent": 0},
    }


def test_json_plot_and_text(tmp_path):
    result = _minimal_report()
    h = report.new_histogram()
    for us in (100, 200, 5000):
        report.record(h, us)
    report.write_json(result, str(tmp_path / "out" / "r.json"))
    assert json.loads((tmp_path / "out" / "r.json").read_text())["orders_acked"] == 3
    report.plot(str(tmp_path / "p.png"), {"submit": report.percentile_curve(h)}, [3, 0], "title")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    text = "\n".join(report.text_lines(result))
    assert "lost: 0" in text and "orders/s: 3.0" in text and "p99.9" in text


def test_cpu_meter_counts_the_work_of_forked_workers():
    """Like PostgreSQL's backends: the parent idles while a child it forked does the work.
    The child burns a fixed amount of its own CPU time (not wall time, so a loaded
    machine cannot shrink it) and stays alive while the meter reads it."""
    burn = (
        "import sys, time\n"
        "while time.process_time() < 0.4: pass\n"
        "print('burned', flush=True)\n"
        "time.sleep(60)\n"
    )
    script = (
        "import subprocess, sys\n"
        "sys.stdin.readline()\n"  # start the work only once the meter is running
        f"worker = subprocess.Popen([sys.executable, '-c', {burn!r}])\n"
        "worker.wait()\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        meter = report.CpuMeter({"parent": parent.pid})
        parent.stdin.write("go\n")
        parent.stdin.flush()
        assert parent.stdout.readline().strip() == "burned"
        used = meter.stop()["parent"]
    finally:
        for child in psutil.Process(parent.pid).children(recursive=True):
            child.kill()
        parent.kill()
        parent.wait()
    assert used is not None and used >= 0.25
