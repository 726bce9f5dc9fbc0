"""Per-key allowances of calls in flight: counted per account, released when a call ends
(also by an error), refused beyond with RESOURCE_EXHAUSTED and a RetryInfo."""

import grpc
import pytest

from services.common.errors import BourseError, to_status
from services.order.limits import RETRY_AFTER_S, InFlight, KeyLimits, Rate


def test_each_account_has_its_own_allowance_and_a_finished_call_frees_its_place():
    reads = InFlight("reads", 2)
    with reads.call(1), reads.call(1):
        with pytest.raises(BourseError) as refused:
            with reads.call(1):
                pass
        assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused.value.reason == "TOO_MANY_IN_FLIGHT" and refused.value.retry_after_s == RETRY_AFTER_S
        with reads.call(2):  # another key is not affected
            assert len(reads) == 3
    with pytest.raises(ValueError):
        with reads.call(1):
            raise ValueError("a call that failed")
    assert len(reads) == 0
    with reads.call(1), reads.call(1):
        pass


def test_the_refusal_carries_error_info_and_retry_info():
    from google.rpc import error_details_pb2, status_pb2

    status = to_status(BourseError(grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_IN_FLIGHT", "m", retry_after_s=0.25))
    details = status_pb2.Status.FromString(dict(status.trailing_metadata)["grpc-status-details-bin"]).details
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert details[0].Unpack(info) and info.reason == "TOO_MANY_IN_FLIGHT"
    assert details[1].Unpack(retry) and retry.retry_delay.ToNanoseconds() == 250_000_000


def test_the_rate_is_a_token_bucket_per_account_with_a_retry_delay_until_the_next_token():
    now = [100.0]
    rate = Rate(8, burst=3, clock=lambda: now[0])  # binary fractions: exact times
    for _ in range(3):  # the burst
        rate.take(1)
    with pytest.raises(BourseError) as refused:
        rate.take(1)
    assert (refused.value.code, refused.value.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert refused.value.retry_after_s == pytest.approx(0.125)
    rate.take(2)  # another key has its own bucket
    now[0] += 0.0625  # half a token
    with pytest.raises(BourseError) as refused:
        rate.take(1)
    assert refused.value.retry_after_s == pytest.approx(0.0625)
    now[0] += 0.0625
    rate.take(1)
    now[0] += 60  # an idle key's bucket refills to the burst, not beyond
    for _ in range(3):
        rate.take(1)
    with pytest.raises(BourseError):
        rate.take(1)


def test_a_call_is_admitted_within_the_rate_and_its_kinds_allowance():
    now = [0.0]
    limits = KeyLimits(InFlight("orders", 5), InFlight("reads", 1), Rate(100, clock=lambda: now[0]))
    with limits.admit("reads", 1):
        with pytest.raises(BourseError, match="reads in flight"):
            with limits.admit("reads", 1):
                pass
        with limits.admit("orders", 1):  # order entry keeps its own allowance
            assert len(limits.orders) == 1
