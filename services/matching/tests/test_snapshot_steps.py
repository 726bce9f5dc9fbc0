"""A snapshot encoded in steps while the shard goes on (LiveOrders.freeze, copy-on-write):
it must be the books as they were when taken, and the shard must go on exactly as one that
never snapshots, whatever the commands between the steps did to the orders it froze."""

from __future__ import annotations

import random
from dataclasses import astuple

from bourse.matching.v1 import matching_service_pb2 as m

from services.matching import live_orders
from services.matching.tests.test_matching import (
    BUY,
    CLOCK,
    SELL,
    _busy_shard,
    _states,
    cancel,
    modify,
    new,
)

SYMBOLS_TRADED = ("AAPL", "GOOG", "AMD")


class Commands:
    """Random commands on a shard's orders: new ones (some crossing), cancels, modifies,
    and now and then a mass cancel of an account's orders."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.next_id = 100

    def batch(self, size: int = 12) -> list:
        rng, commands = self.rng, []
        for _ in range(size):
            draw, symbol, account = rng.random(), rng.choice(SYMBOLS_TRADED), rng.randrange(1, 6)
            target = rng.randrange(1, self.next_id)
            if draw < 0.4:
                commands.append(new(self.next_id, rng.choice([BUY, SELL]), 100 + rng.randrange(-6, 7),
                                    rng.randrange(1, 40), account=account, symbol=symbol))
                self.next_id += 1
            elif draw < 0.65:
                commands.append(cancel(target, account=account, symbol=symbol))
            elif draw < 0.97:
                commands.append(modify(target, 100 + rng.randrange(-6, 7), rng.randrange(1, 40), account=account,
                                       symbol=symbol))
            else:
                commands.append(m.Command(mass_cancel=m.MassCancel(account_id=account)))
        return commands


def _twins(node: int):
    # Trade ids alike in both: minted on a clock that stands still.
    return _busy_shard(node, id_clock=lambda: 1.8e9), _busy_shard(node, id_clock=lambda: 1.8e9)


def _run_both(plain, snapping, commands) -> None:
    CLOCK[0] += 10**9
    expected, got = plain.execute(commands), snapping.execute(commands)
    assert got.results == expected.results
    assert vars(got.write) == vars(expected.write)


def test_a_snapshot_encoded_in_steps_while_commands_change_its_orders_is_the_books_when_taken(monkeypatch):
    """Worked example: the snapshot packs its rows three orders a step; between steps,
    commands fill, cancel, modify and mass-cancel the orders it froze. Its bytes are the
    snapshot the same books gave at once, when taken; a twin that never snapshots
    answers every command alike, before and after the shard adopts the rows."""
    monkeypatch.setattr(live_orders, "PACK_STEP", 3)
    for seed in range(6):
        plain, snapping = _twins(650 + seed)
        commands = Commands(seed)
        for _ in range(seed):  # from the second seed on, most orders are packed rows already
            snapping.snapshot()
            _run_both(plain, snapping, commands.batch())
        expected = plain.snapshot()
        taken = snapping.take_snapshot()
        frozen, steps = len(taken.view._states), 0
        for step in taken.encoding():
            if step is not None:
                step()
            steps += 1
            _run_both(plain, snapping, commands.batch())
        # Commands ran between every 3 orders' rows, and between the steps that follow them.
        assert frozen > 0 and steps > -(-frozen // 3)
        assert taken.data == expected
        assert snapping.adopt(taken)
        for _ in taken.view.release(step=5):
            _run_both(plain, snapping, commands.batch())
        for _ in range(10):
            _run_both(plain, snapping, commands.batch())
        assert _states(snapping) == _states(plain)
        assert snapping.snapshot() == plain.snapshot()


def test_a_state_a_view_froze_is_copied_before_a_command_can_change_it():
    """The frozen view's OrderState objects are never handed out: get and pop return a
    copy, once, and the copy is what the shard holds and changes from then on."""
    shard = _busy_shard(660)
    view = shard.live.freeze()
    before = {order_id: astuple(state) for order_id, state in view._states.items()}
    first, second, third, fourth = sorted(view._states)[:4]
    got = shard.live.get(first)
    assert got == view._states[first] and got is not view._states[first]
    assert shard.live.get(first) is got  # copied once
    popped = shard.live.pop(second)
    assert popped == view._states[second] and popped is not view._states[second]
    order = view._states[third]
    shard.execute([cancel(third, account=order.account_id, symbol=order.symbol),
                   new(900, BUY, 200, 10_000, account=7), new(901, SELL, 1, 10_000, account=7, symbol="GOOG")])
    assert third not in shard.live and len(shard.live) < len(view._states) - 2  # the crossing orders took many
    assert {order_id: astuple(state) for order_id, state in view._states.items()} == before
    assert shard.live.adopt(None) is False  # no rows: the view is dropped, copying stops
    assert shard.live.get(fourth) is view._states[fourth] or fourth not in shard.live


def test_only_the_latest_view_is_adopted():
    shard = _busy_shard(661)
    first = shard.take_snapshot()
    first.encode()
    second = shard.take_snapshot()
    second.encode()
    assert not shard.adopt(first)
    assert shard.adopt(second)


def test_a_snapshot_is_the_message_protobuf_itself_would_write():
    """The snapshot writes its two large fields after the rest of the message, by hand:
    parsed, it is the message protobuf itself serializes from the same fields."""
    shard = _busy_shard(662)
    data = shard.snapshot()
    parsed = m.ShardSnapshot.FromString(data)
    assert parsed.engine[:4] == b"BSHD" and parsed.client_order_id_keys and parsed.symbol_ids
    # Nothing more, nothing less: protobuf writes the parsed message in as many bytes.
    assert len(parsed.SerializeToString(deterministic=True)) == len(data)
    assert shard.snapshot() == data  # one state, one snapshot
