"""The store on SQLite, one temporary file per shard (same SQL as PostgreSQL but the dialect)."""

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from services.common.config import ShardMap
from services.persistence.store import InvalidArgument, ShardedStore, StoreUnavailable, decode_page_token

pytestmark = pytest.mark.timeout(60)
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


def run(coro):
    return asyncio.run(coro)


def order(order_id, symbol="AAPL", account=1, client=None, status=1, filled=0, quantity=10, t=T0):
    return {
        "order_id": order_id, "account_id": account,
        "client_order_id": f"c{order_id}" if client is None else client,
        "symbol": symbol, "side": 1, "order_type": 1, "time_in_force": 1, "status": status,
        "price": 100, "quantity": quantity, "filled_quantity": filled,
        "leaves_quantity": quantity - filled if status in (1, 2) else 0,
        "reason": "", "create_time": t, "update_time": t,
    }


def trade(trade_id, maker, taker, symbol="AAPL", quantity=5, t=T0):
    return {
        "trade_id": trade_id, "symbol": symbol, "price": 100, "quantity": quantity,
        "maker_order_id": maker, "taker_order_id": taker, "maker_account_id": 1,
        "taker_account_id": 2, "aggressor_side": 2, "time": t,
    }


@pytest.fixture
def store(tmp_path):
    urls = [f"sqlite:///{tmp_path}/shard{i}.sqlite" for i in range(3)]
    s = ShardedStore(urls, ShardMap.parse("A-G,H-O,P-Z"))
    s.create_schema()
    s.create_schema()  # idempotent
    try:
        yield s
    finally:
        s.close()


def shard_count(store, db, table="orders"):
    with store._shards[db].engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()


def test_rows_land_on_their_symbols_shard_and_read_back_unchanged(store):
    result = run(store.write_batch([order(1, "AAPL"), order(2, "MSFT"), order(3, "ZM")]))
    assert (result.orders_inserted, result.orders_updated, result.trades_inserted) == (3, 0, 0)
    assert [shard_count(store, db) for db in range(3)] == [1, 1, 1]
    got = run(store.get_order(2))
    expected = order(2, "MSFT")
    assert {k: got[k] for k in expected} == expected
    assert got["fills"] == []


def test_updates_change_state_and_trades_become_fills(store):
    run(store.write_batch([order(1), order(2, account=2)]))
    later = T0 + timedelta(seconds=1)
    result = run(store.write_batch(
        updated_orders=[order(1, status=2, filled=5, t=later) | {"create_time": T0},
                        order(2, account=2, status=3, filled=5, quantity=5, t=later)],
        trades=[trade(10, maker=1, taker=2, t=later)],
    ))
    assert (result.orders_updated, result.trades_inserted) == (2, 1)
    maker = run(store.get_order(1))
    assert (maker["status"], maker["filled_quantity"], maker["leaves_quantity"]) == (2, 5, 5)
    assert maker["update_time"] == later and maker["create_time"] == T0
    assert maker["fills"] == [{"trade_id": 10, "price": 100, "quantity": 5, "maker": True, "time": later}]
    taker = run(store.get_order(2))
    assert [f["maker"] for f in taker["fills"]] == [False]


def test_a_retried_batch_changes_nothing(store):
    batch = ([order(1), order(2)], [], [trade(7, 1, 2)])
    run(store.write_batch(*batch))
    again = run(store.write_batch(*batch))
    assert (again.orders_inserted, again.trades_inserted) == (0, 0)
    assert shard_count(store, 0) == 2 and shard_count(store, 0, "trades") == 1


def test_a_client_order_id_may_name_several_orders(store):
    # The matching shard keeps keys unique per (account, symbol) within its window
    # (services/matching/client_ids.py); the table stores what it commits.
    run(store.write_batch([order(1, client="k")]))
    result = run(store.write_batch([order(2, client="k"), order(3, client="k", account=2)]))
    assert result.orders_inserted == 2
    assert [run(store.get_order(i))["client_order_id"] for i in (1, 2, 3)] == ["k", "k", "k"]


def test_empty_client_order_ids_never_collide(store):
    result = run(store.write_batch([order(1, client=""), order(2, client="")]))
    assert result.orders_inserted == 2
    assert run(store.get_order(2))["client_order_id"] == ""


def test_duplicates_inside_one_batch_are_inserted_once(store):
    result = run(store.write_batch([order(1), order(1)], [], [trade(5, 1, 1), trade(5, 1, 1)]))
    assert (result.orders_inserted, result.trades_inserted) == (1, 1)


def test_an_order_of_another_account_is_not_found(store):
    run(store.write_batch([order(1, account=1)]))
    assert run(store.get_order(1, account_id=1))["order_id"] == 1
    assert run(store.get_order(1, account_id=2)) is None
    assert run(store.get_order(99)) is None


def test_list_orders_pages_newest_first_across_shards(store):
    symbols = ["AAPL", "MSFT", "ZM"]
    run(store.write_batch([order(i, symbols[i % 3]) for i in range(1, 26)] + [order(100, account=2)]))
    seen, token, pages = [], "", 0
    while True:
        rows, token = run(store.list_orders(1, page_size=10, page_token=token))
        seen += [r["order_id"] for r in rows]
        pages += 1
        if not token:
            break
    assert seen == list(range(25, 0, -1)) and pages == 3
    rows, token = run(store.list_orders(1, symbol="MSFT"))
    assert [r["order_id"] for r in rows] == [25, 22, 19, 16, 13, 10, 7, 4, 1] and token == ""
    assert run(store.list_orders(1, symbol="?")) == ([], "")
    rows, _ = run(store.list_orders(1))  # page_size 0 means the default
    assert len(rows) == 25


def test_an_exact_last_page_has_no_next_token(store):
    run(store.write_batch([order(i) for i in range(1, 5)]))
    rows, token = run(store.list_orders(1, page_size=4))
    assert len(rows) == 4 and token == ""


@pytest.mark.parametrize("size", [-1, 1001])
def test_page_size_out_of_range_is_refused(store, size):
    with pytest.raises(InvalidArgument) as e:
        run(store.list_orders(1, page_size=size))
    assert e.value.field == "page_size"


@pytest.mark.parametrize("token", ["!!", "bm90LWEtbnVtYmVy", "-1", "MA"])
def test_a_bad_page_token_is_refused(store, token):
    with pytest.raises(InvalidArgument) as e:
        run(store.list_orders(1, page_token=token))
    assert e.value.field == "page_token"


def test_page_token_round_trips():
    from services.persistence.store import encode_page_token
    assert decode_page_token(encode_page_token(2**62 + 5)) == 2**62 + 5


def test_a_symbol_without_a_shard_is_refused_before_anything_is_written(store):
    with pytest.raises(InvalidArgument) as e:
        run(store.write_batch([order(1), order(2, "?")]))
    assert e.value.field == "new_orders.symbol"
    assert shard_count(store, 0) == 0


def test_fewer_databases_than_ranges_wrap_around(tmp_path):
    s = ShardedStore([f"sqlite:///{tmp_path}/a.sqlite", f"sqlite:///{tmp_path}/b.sqlite"],
                     ShardMap.parse("A-G,H-O,P-Z"))
    try:
        s.create_schema()
        assert [s.db_of(x) for x in ("AAPL", "MSFT", "ZM")] == [0, 1, 0]
        run(s.write_batch([order(1, "AAPL"), order(2, "MSFT"), order(3, "ZM")]))
        assert shard_count(s, 0) == 2
        rows, _ = run(s.list_orders(1))
        assert [r["order_id"] for r in rows] == [3, 2, 1]  # each database read once
    finally:
        s.close()


def test_an_unreachable_database_raises_store_unavailable(tmp_path):
    s = ShardedStore([f"sqlite:///{tmp_path}/missing-dir/x.sqlite"], ShardMap.parse("A-Z"))
    try:
        with pytest.raises(StoreUnavailable):
            s.create_schema()
        with pytest.raises(StoreUnavailable):
            run(s.write_batch([order(1)]))
        with pytest.raises(StoreUnavailable):
            run(s.get_order(1))
    finally:
        s.close()


def test_the_journal_waits_for_a_write_whose_caller_gave_up(store, monkeypatch):
    import time

    from services.persistence import writes

    original = writes._write_core

    def slow_write(*args):
        time.sleep(0.5)
        return original(*args)

    monkeypatch.setattr(writes, "_write_core", slow_write)

    async def go():
        write = asyncio.create_task(store.write_batch([order(1)], matching_shard=0,
                                                      journal=[{"sequence": 1, "command": b"c", "time": T0}]))
        await asyncio.sleep(0.1)
        write.cancel()  # the caller's deadline expired; the transaction goes on
        with pytest.raises(asyncio.CancelledError):
            await write
        return [sequence for page in [p async for p in store.read_journal(0)] for sequence, _, _ in page]

    assert run(go()) == [1]
