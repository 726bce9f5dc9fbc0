"""loadgen.main's Run in both modes against an in-test fake order service (no network):
accounting, the report, and per-client consistency when a client's calls overlap."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

import grpc
import pytest

from loadgen import report
from loadgen.main import Run, parse_args
from loadgen.workload import CANCELLED, FILLED, LIMIT, NEW

pytestmark = pytest.mark.timeout(60)


class FakeOrderService:
    """Answers after 20-80 ms, so at a few ms between calls each client has several calls in
    flight. Refuses (and records) any cancel of an order it has not acknowledged yet, or of
    one cancelled before: the workload must never send those."""

    def __init__(self, seed: int = 0, unavailable_every: int = 0):
        self.rng = random.Random(seed)
        self.next_id = 1000
        self.acked: dict[int, str] = {}  # order_id -> client_order_id, once the answer is sent
        self.cancelled: set[int] = set()
        self.bad_cancels: list[int] = []
        self.coids: list[str] = []
        self.in_flight = 0
        self.peak = 0
        self.unavailable_every = unavailable_every
        self.submits = 0

    async def _wait(self) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.rng.uniform(0.02, 0.08))
        finally:
            self.in_flight -= 1

    async def SubmitOrder(self, request, metadata=None, timeout=None):
        assert metadata and metadata[0][0] == "authorization" and timeout
        self.submits += 1
        number = self.submits
        self.coids.append(request.client_order_id)
        await self._wait()
        if self.unavailable_every and number % self.unavailable_every == 0:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "x")
        self.next_id += 1
        resting = request.order_type == LIMIT and self.rng.random() < 0.7
        order = SimpleNamespace(order_id=self.next_id, status=NEW if resting else FILLED,
                                filled_quantity=0 if resting else request.quantity,
                                leaves_quantity=request.quantity if resting else 0)
        self.acked[order.order_id] = request.client_order_id
        return SimpleNamespace(order=order, replayed=False)

    async def CancelOrder(self, request, metadata=None, timeout=None):
        if request.order_id not in self.acked or request.order_id in self.cancelled:
            self.bad_cancels.append(request.order_id)
        self.cancelled.add(request.order_id)
        await self._wait()
        if self.rng.random() < 0.2:  # lost the race against a fill
            raise grpc.aio.AioRpcError(grpc.StatusCode.FAILED_PRECONDITION, grpc.aio.Metadata(),
                                       grpc.aio.Metadata(), "filled")
        order = SimpleNamespace(order_id=request.order_id, status=CANCELLED, filled_quantity=0, leaves_quantity=0)
        return SimpleNamespace(order=order)  # as CancelOrderResponse: no `replayed`


def drive(argv, service):
    args = parse_args(["--symbols", "AAPL,IBM", "--api-keys", "k1,k2", "--plot", "", *argv])
    run = Run(args)
    elapsed = asyncio.run(run.drive([service, service], progress=False))
    return run, run.summary(elapsed, {}, 0.0)


def test_open_loop_runs_at_the_rate_with_overlapping_calls_per_client():
    service = FakeOrderService()
    run, result = drive(["--rate", "400", "--duration", "1", "--clients", "3"], service)
    ol = result["open_loop"]
    assert result["mode"] == "open"
    assert (ol["scheduled"], ol["started"], ol["dropped"]) == (400, 400, 0)
    assert ol["intended_rate"] == 400 and ol["offered_rate"] == 400.0
    assert 300 <= ol["achieved_rate"] <= 400  # those answered after the window are not in it
    assert result["calls"] == 400 == result["orders_acked"] + result["cancels_ok"] + sum(
        result["expected_refusals"].values())
    assert service.peak >= 10 and ol["peak_in_flight"] >= 10  # ~20 in flight: many per client
    # Overlap kept the workload consistent: only acknowledged, not yet cancelled orders.
    assert result["cancels_ok"] > 0 and service.bad_cancels == []
    assert len(service.coids) == len(set(service.coids))
    assert {c.split("-")[1] for c in service.coids} == {"0", "1", "2"}
    assert result["errors"]["total"] == 0
    assert result["latency"]["all"]["count"] == 400
    assert result["latency"]["all"]["p50_ms"] >= 20  # the fake's service time is in it
    assert set(run.workloads) == {0, 1, 2}
    text = "\n".join(report.text_lines({**result, "durability": None}))
    assert "intended 400 calls/s" in text and "dropped 0" in text


def test_open_loop_poisson_and_errors_by_code():
    service = FakeOrderService(seed=2, unavailable_every=10)
    _, result = drive(["--rate", "300", "--duration", "0.7", "--clients", "4", "--arrivals", "poisson"], service)
    ol = result["open_loop"]
    assert ol["arrivals"] == "poisson" and ol["dropped"] == 0
    assert 150 < ol["scheduled"] < 270  # 210 expected
    assert result["calls"] == ol["started"] == ol["scheduled"]
    assert result["errors"]["by_code"]["UNAVAILABLE"] == service.submits // 10
    assert service.bad_cancels == []


def test_open_loop_drops_what_the_cap_does_not_allow():
    service = FakeOrderService()
    _, result = drive(["--rate", "200", "--duration", "0.5", "--clients", "2", "--max-in-flight", "2"], service)
    ol = result["open_loop"]
    assert ol["scheduled"] == 100
    assert ol["dropped"] > 50 and ol["started"] + ol["dropped"] == 100
    assert ol["peak_in_flight"] == 2 and service.peak <= 2
    assert result["calls"] == ol["started"]
    text = "\n".join(report.text_lines({**result, "durability": None}))
    assert f"dropped {ol['dropped']}" in text and "WARNING" in text


def test_closed_loop_still_works():
    service = FakeOrderService()
    _, result = drive(["--duration", "0.5", "--clients", "4"], service)
    assert result["mode"] == "closed" and result["open_loop"] is None
    assert service.peak <= 4  # one call in flight per client
    assert 20 < result["calls"] < 120 and result["errors"]["total"] == 0
    assert service.bad_cancels == []
    text = "\n".join(report.text_lines({**result, "durability": None}))
    assert "open loop" not in text


def test_open_loop_cli():
    args = parse_args(["--rate", "300", "--arrivals", "poisson", "--max-in-flight", "5", "--clients", "10"])
    assert args.open_loop and args.rate == 300 and args.arrivals == "poisson" and args.max_in_flight == 5
    assert args.channels == 8
    closed = parse_args([])
    assert not closed.open_loop and closed.rate == 0 and closed.arrivals == "fixed" and closed.max_in_flight == 2000
    for bad in (["--rate", "-1"], ["--max-in-flight", "0"], ["--arrivals", "bursty"], ["--rate", "x"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
