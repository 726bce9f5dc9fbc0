"""ShardStream (and the Batcher above it) against a real grpc.aio server whose
ExecuteStream each test scripts: answer, delay, stay silent, stop reading, abort,
send garbage, or go away and come back on the same port."""

import asyncio
import contextlib
import time

import grpc
import pytest
from bourse.matching.v1 import matching_service_pb2 as m
from bourse.matching.v1 import matching_service_pb2_grpc as matching_grpc
from bourse.type.v1 import types_pb2 as t

from infra.local.servers import free_port
from services.order.batcher import Batcher
from services.order.downstream import ShardStream, ShardUnavailable

pytestmark = pytest.mark.timeout(20)


def command(order_id: int, padding: int = 0) -> m.Command:
    return m.Command(new_order=m.NewOrder(order_id=order_id, symbol="AAPL", client_order_id="x" * padding))


class FakeShard(matching_grpc.MatchingServiceServicer):
    """Answers each command with its order id. `plan` scripts successive streams (the
    first stream does plan[0], ...; later ones answer):
    answer | delay (answer after `delay` s) | silent (reads on, never answers) |
    stall (stops reading) | abort (UNAVAILABLE on the first batch) | garbage."""

    def __init__(self, plan=(), delay: float = 0.3):
        self.plan = list(plan)
        self.delay = delay
        self.streams = 0
        self.received: list[tuple[int, int]] = []  # (stream number, batch_id)

    async def ExecuteStream(self, request_iterator, context):
        self.streams += 1
        number = self.streams
        mode = self.plan[number - 1] if number <= len(self.plan) else "answer"
        async for request in request_iterator:
            self.received.append((number, request.batch_id))
            if mode == "silent":
                continue
            if mode == "stall":
                await asyncio.Event().wait()
            if mode == "abort":
                await context.abort(grpc.StatusCode.UNAVAILABLE, "shard stopping")
            if mode == "garbage":
                yield b"\xff\xff\xff"  # the client cannot decode it: read() returns None
                continue
            if mode == "delay":
                await asyncio.sleep(self.delay)
            results = [m.CommandResult(order=t.Order(order_id=c.new_order.order_id)) for c in request.commands]
            yield m.ExecuteStreamResponse(batch_id=request.batch_id, results=results).SerializeToString()

    def handler(self):
        # Raw bytes out, so a test can answer with what no client can decode.
        method = grpc.stream_stream_rpc_method_handler(
            self.ExecuteStream, request_deserializer=m.ExecuteStreamRequest.FromString
        )
        return grpc.method_handlers_generic_handler("bourse.matching.v1.MatchingService", {"ExecuteStream": method})


@contextlib.asynccontextmanager
async def serving(shard: FakeShard, port: int):
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((shard.handler(),))
    assert server.add_insecure_port(f"127.0.0.1:{port}") == port
    await server.start()
    try:
        yield server
    finally:
        await server.stop(None)


@contextlib.asynccontextmanager
async def shard_stream(port: int, timeout_s: float = 5.0, wrap=lambda stub: stub):
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.initial_reconnect_backoff_ms", 100)])
    stream = ShardStream(wrap(matching_grpc.MatchingServiceStub(channel)), timeout_s)
    try:
        yield stream
    finally:
        await stream.close()
        await channel.close()


async def order_ids(stream, *ids):
    return [r.order.order_id for r in await stream([command(i) for i in ids])]


async def until(predicate, timeout_s: float = 3.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def test_concurrent_batches_get_their_own_answers_on_one_stream():
    async def scenario():
        shard, port = FakeShard(), free_port()
        async with serving(shard, port), shard_stream(port) as stream:
            answers = await asyncio.gather(*(order_ids(stream, i, i + 1000) for i in range(50)))
            assert answers == [[i, i + 1000] for i in range(50)]
            assert shard.streams == 1

    asyncio.run(scenario())


def test_a_caller_that_gives_up_leaves_the_stream_open():
    async def scenario():
        shard, port = FakeShard(plan=["delay"]), free_port()
        async with serving(shard, port), shard_stream(port) as stream:
            impatient = asyncio.create_task(order_ids(stream, 1))
            await until(lambda: shard.received)
            impatient.cancel()
            with pytest.raises(asyncio.CancelledError):
                await impatient
            assert await order_ids(stream, 2) == [2]
            assert shard.streams == 1

    asyncio.run(scenario())


class LateReader:
    """Wraps the stub so that the first stream's reader learns of the stream's end only
    when `release` is set: the reader of a dead stream running late."""

    def __init__(self, stub):
        self.stub = stub
        self.release = asyncio.Event()
        self.calls = 0

    def ExecuteStream(self):
        self.calls += 1
        call = self.stub.ExecuteStream()
        return self._Late(call, self.release) if self.calls == 1 else call

    class _Late:
        def __init__(self, call, release):
            self.call, self.release = call, release
            self.write, self.cancel = call.write, call.cancel

        async def read(self):
            try:
                return await self.call.read()
            except BaseException:
                await self.release.wait()
                raise


def test_a_late_failure_of_an_old_stream_spares_the_batches_of_the_new_one():
    async def scenario():
        shard, port = FakeShard(plan=["abort", "delay"]), free_port()
        late = None

        def wrap(stub):
            nonlocal late
            late = LateReader(stub)
            return late

        async with serving(shard, port), shard_stream(port, wrap=wrap) as stream:
            first = asyncio.create_task(order_ids(stream, 1))
            await until(lambda: shard.received)
            await asyncio.sleep(0.2)  # the shard aborted stream 1; its reader has not noticed
            with pytest.raises(ShardUnavailable):
                await order_ids(stream, 2)  # the write fails: stream 1 is reset...
            with pytest.raises(ShardUnavailable):
                await first  # ...with the batch that was waiting on it
            second = asyncio.create_task(order_ids(stream, 3))  # on stream 2, answered after 0.3 s
            await until(lambda: len(shard.received) == 2)
            late.release.set()  # stream 1's reader finally fails
            assert await second == [3]
            assert shard.streams == 2

    asyncio.run(scenario())


def test_a_restarted_shard_is_reached_on_a_new_stream():
    async def scenario():
        shard, port = FakeShard(plan=["silent"]), free_port()
        async with shard_stream(port) as stream:
            async with serving(shard, port):
                waiting = asyncio.create_task(order_ids(stream, 2))
                await until(lambda: shard.received)
            started = time.monotonic()
            with pytest.raises(ShardUnavailable):
                await waiting  # the stream died with the server: no need to wait out the timeout
            assert time.monotonic() - started < 2
            restarted = FakeShard()
            async with serving(restarted, port):
                deadline = time.monotonic() + 5
                while True:  # as a client retries while the channel reconnects
                    try:
                        assert await order_ids(stream, 3) == [3]
                        break
                    except ShardUnavailable:
                        assert time.monotonic() < deadline
                        await asyncio.sleep(0.1)
                assert await order_ids(stream, 4) == [4]
                assert restarted.streams == 1

    asyncio.run(scenario())


class StuckWrites:
    """Wraps the stub so that writes hang, as when a shard stops reading and HTTP/2 flow
    control blocks them, until the call is cancelled; then the write raises
    CancelledError, as grpc does for a write on a call cancelled under it. (Real flow
    control fills at a pace a loaded machine cannot promise, so the test does not wait
    for it.)"""

    def __init__(self, stub):
        self.stub = stub

    def ExecuteStream(self):
        return self._Stuck(self.stub.ExecuteStream())

    class _Stuck:
        def __init__(self, call):
            self.call, self.read = call, call.read
            self.cancelled = asyncio.Event()

        async def write(self, request):
            await self.cancelled.wait()
            raise asyncio.CancelledError()

        def cancel(self):
            self.cancelled.set()
            return self.call.cancel()


def test_callers_of_writes_cancelled_under_them_are_answered_at_once():
    async def scenario():
        shard, port = FakeShard(), free_port()
        async with serving(shard, port), shard_stream(port, timeout_s=30, wrap=StuckWrites) as stream:
            batcher = Batcher(stream, batch_max=1, max_in_flight=64)
            batcher.start()
            try:
                callers = [asyncio.create_task(batcher.execute(command(i))) for i in range(80)]
                await until(lambda: stream._write_lock.locked())  # a write is in progress, stuck
                await asyncio.sleep(0.2)
                assert not any(c.done() for c in callers)
                await stream.close()
                done, _ = await asyncio.wait(callers, timeout=3)
                assert len(done) == len(callers), "callers left hanging"
                errors = [c.exception() for c in callers]
                assert all(isinstance(e, ShardUnavailable) for e in errors)
                assert any(isinstance(e.__cause__, asyncio.CancelledError) for e in errors), {str(e) for e in errors}
            finally:
                await batcher.stop()

    asyncio.run(scenario())


def test_a_batcher_answers_its_callers_even_when_the_send_is_cancelled():
    async def scenario():
        calls = 0

        async def send(items):
            nonlocal calls
            calls += 1
            if calls == 1:
                raise asyncio.CancelledError()  # as grpc raises from a call cancelled under it
            return items

        batcher = Batcher(send, max_in_flight=1)
        batcher.start()
        try:
            with pytest.raises(RuntimeError, match="abandoned"):
                await asyncio.wait_for(batcher.execute(1), 2)
            assert await asyncio.wait_for(batcher.execute(2), 2) == 2  # its slot came back
        finally:
            await batcher.stop()

    asyncio.run(scenario())


def test_a_reader_that_dies_resets_the_stream():
    async def scenario():
        shard, port = FakeShard(plan=["garbage"]), free_port()
        async with serving(shard, port), shard_stream(port, timeout_s=2) as stream:
            started = time.monotonic()
            with pytest.raises(ShardUnavailable):
                await order_ids(stream, 1)
            assert time.monotonic() - started < 1
            assert await order_ids(stream, 2) == [2]
            assert shard.streams == 2

    asyncio.run(scenario())


def test_a_silent_shard_fails_the_stream_and_the_next_batch_opens_a_new_one():
    async def scenario():
        shard, port = FakeShard(plan=["silent"]), free_port()
        async with serving(shard, port), shard_stream(port, timeout_s=1.0) as stream:
            started = time.monotonic()
            first = asyncio.create_task(order_ids(stream, 1))
            await asyncio.sleep(0.6)
            second = asyncio.create_task(order_ids(stream, 2))
            for caller in (first, second):
                with pytest.raises(ShardUnavailable):
                    await caller
            # The first timeout breaks the stream: the second batch fails with it.
            assert time.monotonic() - started < 1.4
            assert await order_ids(stream, 3) == [3]
            assert shard.streams == 2

    asyncio.run(scenario())


def test_a_closed_stream_refuses_batches():
    async def scenario():
        shard, port = FakeShard(), free_port()
        async with serving(shard, port), shard_stream(port) as stream:
            assert await order_ids(stream, 1) == [1]
            await stream.close()
            with pytest.raises(ShardUnavailable):
                await order_ids(stream, 2)

    asyncio.run(scenario())
