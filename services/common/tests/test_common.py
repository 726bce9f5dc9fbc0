import hashlib
import string

import grpc
import pytest

from services.common import api_keys
from services.common.config import ShardMap, symbol_ids
from services.common.errors import BourseError, to_status
from services.common.ids import SnowflakeIds


def test_default_shard_ranges_split_the_alphabet_in_three():
    shards = ShardMap.parse("A-G,H-O,P-Z")
    assert [shards.shard_of(s) for s in ("AAPL", "GOOG", "HD", "ORCL", "PEP", "ZM")] == [0, 0, 1, 1, 2, 2]


def test_a_symbol_outside_every_range_has_no_shard():
    assert ShardMap.parse("A-C").shard_of("MSFT") is None


@pytest.mark.parametrize("spec", ["A-", "a-g", "G-A", "AB-C", ""])
def test_bad_shard_ranges_are_refused(spec):
    with pytest.raises(ValueError):
        ShardMap.parse(spec)


def test_new_api_keys_are_distinct_and_named_by_their_hash():
    keys = {api_keys.new_key() for _ in range(100)}
    assert len(keys) == 100 and all(k.startswith("bk_") and len(k) == 46 for k in keys)
    key = "demo-key-alice"
    assert api_keys.key_hash(key) == hashlib.sha256(b"demo-key-alice").digest()
    assert api_keys.key_id_of(api_keys.key_hash(key)) == hashlib.sha256(b"demo-key-alice").hexdigest()[:16]


def test_symbol_ids_are_stable_and_start_at_one():
    assert symbol_ids(["MSFT", "AAPL"]) == {"AAPL": 1, "MSFT": 2}


def test_snowflake_ids_grow_and_carry_their_node():
    ticks = iter([1_800_000_000.0] * 5000 + [1_800_000_000.001])
    ids = SnowflakeIds(node=513, clock=lambda: next(ticks))
    minted = [ids.next() for _ in range(5001)]
    assert minted == sorted(set(minted))  # strictly increasing, even past 4096 per ms
    assert {SnowflakeIds.node_of(i) for i in minted} == {513}
    assert 0 < minted[-1] < 2**63


def test_two_nodes_never_collide_in_the_same_millisecond():
    a = SnowflakeIds(node=0, clock=lambda: 1_800_000_000.0)
    b = SnowflakeIds(node=1, clock=lambda: 1_800_000_000.0)
    assert not {a.next() for _ in range(100)} & {b.next() for _ in range(100)}


def test_errors_carry_code_message_and_reason():
    status = to_status(BourseError(grpc.StatusCode.NOT_FOUND, "ORDER_NOT_FOUND", "order 5 not found"))
    assert status.code == grpc.StatusCode.NOT_FOUND
    assert status.details == "order 5 not found"
    assert status.trailing_metadata[0][0] == "grpc-status-details-bin"


def test_an_invalid_argument_names_its_field_in_a_bad_request():
    from google.rpc import error_details_pb2

    from services.common.errors import invalid, status_message

    status = status_message(invalid("price", "must be 1-10 ticks, got 0"))
    info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    assert status.details[0].Unpack(info) and status.details[1].Unpack(bad)
    assert (status.code, info.reason, status.message) == (3, "INVALID_PRICE", "price: must be 1-10 ticks, got 0")
    assert [(v.field, v.description) for v in bad.field_violations] == [("price", status.message)]
    # Other refusals carry none.
    unavailable = status_message(BourseError(grpc.StatusCode.UNAVAILABLE, "SHARD_DOWN", "later"))
    assert not any(d.Is(error_details_pb2.BadRequest.DESCRIPTOR) for d in unavailable.details)


def test_snowflake_age_is_measured_from_the_ids_own_time():
    minted = SnowflakeIds(node=3, clock=lambda: 1_800_000_000.0).next()
    assert SnowflakeIds.age_ms(minted, clock=lambda: 1_800_000_002.5) == 2500


@pytest.mark.parametrize("spec", ["A-G,H-O,P-Z", "A-C", "A,B-D,Z", "A-M,K-Z"])
def test_shard_of_is_the_first_range_holding_the_first_letter(spec):
    shards = ShardMap.parse(spec)
    for symbol in [*string.ascii_uppercase, "AAPL", "KO", "ZM", "", "aapl", "1A", "[", "@"]:
        first = symbol[:1]
        expected = next((i for i, (low, high) in enumerate(shards.ranges) if low <= first <= high), None)
        assert shards.shard_of(symbol) == expected, symbol
