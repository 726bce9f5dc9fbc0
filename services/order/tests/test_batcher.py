import asyncio
import gc
import weakref

import pytest
from bourse.matching.v1 import matching_service_pb2 as m
from bourse.type.v1 import types_pb2 as t

from services.order.batcher import Batcher


def command(order_id: int) -> m.Command:
    return m.Command(new_order=m.NewOrder(order_id=order_id, symbol="AAPL"))


class SlowShard:
    """Answers each command with its order id after a delay, recording batch sizes."""

    def __init__(self, delay: float = 0.02, fail: bool = False):
        self.delay = delay
        self.fail = fail
        self.batches: list[int] = []

    async def __call__(self, commands):
        self.batches.append(len(commands))
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("shard down")
        return [m.CommandResult(order=t.Order(order_id=c.new_order.order_id)) for c in commands]


async def run_with(shard, calls: int, **kwargs):
    batcher = Batcher(shard, **kwargs)
    batcher.start()
    try:
        return await asyncio.gather(*(batcher.execute(command(i)) for i in range(calls)), return_exceptions=True)
    finally:
        await batcher.stop()


def test_concurrent_commands_share_batches_and_get_their_own_results():
    shard = SlowShard()
    results = asyncio.run(run_with(shard, 200, max_in_flight=1))
    assert [r.order.order_id for r in results] == list(range(200))
    assert sum(shard.batches) == 200
    assert len(shard.batches) < 10  # coalesced, not one call per order


def test_batches_never_exceed_the_maximum():
    shard = SlowShard()
    asyncio.run(run_with(shard, 100, batch_max=16))
    assert max(shard.batches) <= 16 and sum(shard.batches) == 100


def test_a_failed_batch_fails_each_of_its_callers():
    results = asyncio.run(run_with(SlowShard(fail=True), 5))
    assert all(isinstance(r, RuntimeError) for r in results)


@pytest.mark.timeout(10)
def test_a_lone_command_goes_out_at_once():
    shard = SlowShard(delay=0)
    results = asyncio.run(run_with(shard, 1))
    assert results[0].order.order_id == 0 and shard.batches == [1]


def test_a_short_answer_fails_the_whole_batch():
    async def short(items):
        return items[:-1]

    results = asyncio.run(run_with(short, 3, max_in_flight=1))
    assert all(isinstance(r, RuntimeError) for r in results)


def test_a_caller_past_its_deadline_fails_in_time_whether_in_flight_or_queued():
    async def go():
        shard = SlowShard(delay=5.0)  # never answers in time
        batcher = Batcher(shard, max_in_flight=1)
        batcher.start()
        loop = asyncio.get_running_loop()
        try:
            started = loop.time()
            in_flight = asyncio.ensure_future(batcher.execute(command(1), deadline=started + 0.2))
            await asyncio.sleep(0.05)  # sent: its batch holds the only slot
            queued = asyncio.ensure_future(batcher.execute(command(2), deadline=started + 0.3))
            patient = asyncio.ensure_future(batcher.execute(command(3)))
            for call, due in ((in_flight, 0.2), (queued, 0.3)):
                with pytest.raises(TimeoutError):
                    await call
                assert due <= loop.time() - started < due + 0.15
            assert not patient.done()
            patient.cancel()
        finally:
            await batcher.stop()

    asyncio.run(go())


def test_a_group_gets_each_items_outcome_in_order_across_batches():
    """A group larger than a batch rides several; each item keeps its own outcome, so one
    failed batch fails only its own items."""
    calls = []

    async def flaky(commands):
        calls.append(len(commands))
        await asyncio.sleep(0)
        if len(calls) == 2:
            raise RuntimeError("shard down")
        return [m.CommandResult(order=t.Order(order_id=c.new_order.order_id)) for c in commands]

    async def go():
        batcher = Batcher(flaky, batch_max=4, max_in_flight=1)
        batcher.start()
        try:
            group = batcher.enqueue_group([command(i) for i in range(10)])
            outcomes = await group.future
        finally:
            await batcher.stop()
        return outcomes

    outcomes = asyncio.run(go())
    assert calls == [4, 4, 2]
    assert [o.order.order_id for o in outcomes[:4]] == [0, 1, 2, 3]
    assert all(isinstance(o, RuntimeError) for o in outcomes[4:8])
    assert [o.order.order_id for o in outcomes[8:]] == [8, 9]


def test_a_group_past_its_deadline_fails_in_time_and_what_is_still_queued_is_not_sent():
    async def go():
        shard = SlowShard(delay=5.0)  # never answers in time
        batcher = Batcher(shard, max_in_flight=1)
        batcher.start()
        loop = asyncio.get_running_loop()
        try:
            started = loop.time()
            first = batcher.enqueue_group([command(1), command(2)], deadline=started + 0.2)
            await asyncio.sleep(0.05)  # sent: its batch holds the only slot
            second = batcher.enqueue_group([command(3)], deadline=started + 0.1)
            with pytest.raises(TimeoutError):
                await second.future
            with pytest.raises(TimeoutError):
                await first.future
            assert 0.2 <= loop.time() - started < 0.35
            assert first.outcomes == [None, None]  # no item had an answer by then
            assert shard.batches == [2]  # the second group was never sent
        finally:
            await batcher.stop()

    asyncio.run(go())


def test_an_answered_caller_leaves_nothing_behind_until_its_deadline():
    """The deadline heap holds callers' futures weakly: once answered and dropped by the
    caller, a call's result is freed at once, not kept until its deadline (5 s at the
    stream's rate was about 50,000 results a replica, walked by every full collection)."""

    class Result:  # a result that can be watched for being freed
        pass

    made: list[weakref.ref] = []

    async def shard(items):
        results = [Result() for _ in items]
        made.extend(weakref.ref(result) for result in results)
        return results

    async def go():
        batcher = Batcher(shard)
        batcher.start()
        try:
            deadline = asyncio.get_running_loop().time() + 60
            assert isinstance(await batcher.execute(command(1), deadline), Result)
            group = batcher.enqueue_group([command(2), command(3)], deadline)
            assert all(isinstance(outcome, Result) for outcome in await group.future)
            del group
            await asyncio.sleep(0)  # the batch's task finishes
            gc.collect()
            assert len(made) == 3 and all(ref() is None for ref in made)
        finally:
            await batcher.stop()

    asyncio.run(go())
