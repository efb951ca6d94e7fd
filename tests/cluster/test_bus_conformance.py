"""One conformance suite for every `EventBus`: RedisStreamBus (real Redis) and LocalBus."""

from __future__ import annotations

import asyncio

import pytest

from cluster import BusClosedError, BusMessage, EventBus, InvalidEventError, NotAckableError
from cluster.bus import MessageStream
from tests.cluster.conftest import TEST_VISIBILITY_TIMEOUT_S, BusKit, unique, within


async def take(stream: MessageStream) -> BusMessage:
    return await within(anext(stream))


class TestPublishConsumeAck:
    async def test_a_consumer_receives_a_published_event_with_its_content(
        self, bus_kit: BusKit
    ) -> None:
        bus = bus_kit.bus()
        stream = unique("jobs")
        async with bus.consume(stream, group="workers", consumer="w1") as messages:
            message_id = await bus.publish(stream, {"session_id": "s-1", "n": 3, "tags": ["a"]})
            message = await take(messages)
        assert message.id == message_id
        assert message.stream == stream
        assert message.event == {"session_id": "s-1", "n": 3, "tags": ["a"]}
        assert (message.group, message.consumer, message.redelivered) == ("workers", "w1", False)

    async def test_events_arrive_in_publish_order(self, bus_kit: BusKit) -> None:
        bus = bus_kit.bus()
        stream = unique("ordered")
        async with bus.consume(stream, group="g", consumer="c") as messages:
            for n in range(5):
                await bus.publish(stream, {"n": n})
            received = [(await take(messages)).event["n"] for _ in range(5)]
        assert received == [0, 1, 2, 3, 4]

    async def test_a_new_group_sees_only_events_published_after_it_was_created(
        self, bus_kit: BusKit
    ) -> None:
        bus = bus_kit.bus()
        stream = unique("late")
        await bus.publish(stream, {"n": "before"})
        async with bus.consume(stream, group="late", consumer="c") as messages:
            await bus.publish(stream, {"n": "after"})
            assert (await take(messages)).event == {"n": "after"}

    async def test_each_group_receives_every_event(self, bus_kit: BusKit) -> None:
        bus = bus_kit.bus()
        stream = unique("fan")
        async with (
            bus.consume(stream, group="scheduler", consumer="c") as first,
            bus.consume(stream, group="ui", consumer="c") as second,
        ):
            await bus.publish(stream, {"n": 1})
            assert (await take(first)).event == {"n": 1}
            assert (await take(second)).event == {"n": 1}

    async def test_an_acked_message_is_never_redelivered(self, bus_kit: BusKit) -> None:
        bus = bus_kit.bus()
        stream = unique("acked")
        async with bus.consume(stream, group="g", consumer="c") as messages:
            await bus.publish(stream, {"n": 1})
            await bus.publish(stream, {"n": 2})
            first = await take(messages)
            second = await take(messages)
            await bus.ack(first)
            await bus.ack(first)  # acking twice is harmless
            # Only the unacked second message may come back after the visibility timeout; the
            # acked first one, being older, would be reclaimed before it.
            again = await take(messages)
        assert (first.event, second.event) == ({"n": 1}, {"n": 2})
        assert again.redelivered
        assert again.id == second.id


class TestWorkSharing:
    async def test_two_consumers_in_a_group_get_different_messages(self, bus_kit: BusKit) -> None:
        bus, peer = bus_kit.bus(), bus_kit.bus()
        stream = unique("shared")
        async with (
            bus.consume(stream, group="workers", consumer="w1") as w1,
            peer.consume(stream, group="workers", consumer="w2") as w2,
        ):
            await bus.publish(stream, {"n": 1})
            await bus.publish(stream, {"n": 2})
            a = await take(w1)
            b = await take(w2)
        assert {a.event["n"], b.event["n"]} == {1, 2}

    async def test_concurrent_consumers_split_a_burst_without_duplicates(
        self, bus_kit: BusKit
    ) -> None:
        bus, peer = bus_kit.bus(visibility_timeout_s=30), bus_kit.bus(visibility_timeout_s=30)
        stream = unique("burst")
        total = 30
        received: dict[str, list[int]] = {"w1": [], "w2": []}
        done = asyncio.Event()

        async def work(on: EventBus, name: str, opened: asyncio.Event) -> None:
            async with on.consume(stream, group="workers", consumer=name) as messages:
                opened.set()
                async for message in messages:
                    received[name].append(message.event["n"])
                    await on.ack(message)
                    await asyncio.sleep(0)  # let the other worker take the next one
                    if sum(map(len, received.values())) == total:
                        done.set()

        opened = [asyncio.Event(), asyncio.Event()]
        tasks = [
            asyncio.create_task(work(bus, "w1", opened[0])),
            asyncio.create_task(work(peer, "w2", opened[1])),
        ]
        try:
            await within(asyncio.gather(*(e.wait() for e in opened)))
            for n in range(total):
                await bus.publish(stream, {"n": n})
            await within(done.wait())
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        everything = received["w1"] + received["w2"]
        assert sorted(everything) == list(range(total))


class TestRedelivery:
    async def test_an_unacked_message_goes_to_another_consumer_after_the_timeout(
        self, bus_kit: BusKit
    ) -> None:
        crashed, survivor = bus_kit.bus(), bus_kit.bus()
        stream = unique("redeliver")
        async with survivor.consume(stream, group="workers", consumer="survivor") as backup:
            async with crashed.consume(stream, group="workers", consumer="crashed") as doomed:
                await crashed.publish(stream, {"session_id": "s-9"})
                lost = await take(doomed)
            await bus_kit.crash(crashed)  # it dies holding the message, never acking it
            loop = asyncio.get_running_loop()
            started = loop.time()
            again = await take(backup)
            waited = loop.time() - started
        assert again.id == lost.id
        assert again.event == {"session_id": "s-9"}
        assert again.redelivered and again.consumer == "survivor"
        # Not earlier than the visibility timeout (minus scheduling slack).
        assert waited >= TEST_VISIBILITY_TIMEOUT_S * 0.5
        await survivor.ack(again)

    async def test_a_redelivered_and_acked_message_stays_done(self, bus_kit: BusKit) -> None:
        bus = bus_kit.bus()
        stream = unique("redeliver-ack")
        async with bus.consume(stream, group="g", consumer="c") as messages:
            await bus.publish(stream, {"n": 1})
            first = await take(messages)
            again = await take(messages)  # not acked: comes back
            assert again.id == first.id and again.redelivered
            await bus.ack(again)
            await bus.publish(stream, {"n": 2})
            await bus.publish(stream, {"n": 3})
            following = await take(messages)
            await bus.ack(following)
            last = await take(messages)
        assert (following.event, last.event) == ({"n": 2}, {"n": 3})


class TestBroadcast:
    async def test_every_subscriber_gets_every_event_after_subscribing(
        self, bus_kit: BusKit
    ) -> None:
        bus, peer = bus_kit.bus(), bus_kit.bus()
        stream = unique("ui")
        await bus.publish(stream, {"n": "old"})
        async with bus.subscribe(stream) as one, peer.subscribe(stream) as two:
            async with bus.subscribe(stream) as three:
                for n in range(3):
                    await bus.publish(stream, {"n": n})
                got = {
                    name: [(await take(sub)).event["n"] for _ in range(3)]
                    for name, sub in (("one", one), ("two", two), ("three", three))
                }
        assert got == {"one": [0, 1, 2], "two": [0, 1, 2], "three": [0, 1, 2]}

    async def test_a_late_subscriber_misses_earlier_events_only(self, bus_kit: BusKit) -> None:
        bus = bus_kit.bus()
        stream = unique("late-sub")
        async with bus.subscribe(stream) as early:
            await bus.publish(stream, {"n": 1})
            assert (await take(early)).event == {"n": 1}
            async with bus.subscribe(stream) as late:
                await bus.publish(stream, {"n": 2})
                assert (await take(late)).event == {"n": 2}
                assert (await take(early)).event == {"n": 2}

    async def test_broadcast_messages_need_no_ack_and_cannot_be_acked(
        self, bus_kit: BusKit
    ) -> None:
        bus = bus_kit.bus()
        stream = unique("noack")
        async with bus.subscribe(stream) as sub:
            await bus.publish(stream, {"n": 1})
            message = await take(sub)
        assert message.group is None
        with pytest.raises(NotAckableError):
            await bus.ack(message)

    async def test_subscribers_and_groups_both_see_an_event(self, bus_kit: BusKit) -> None:
        bus = bus_kit.bus()
        stream = unique("both")
        async with (
            bus.subscribe(stream) as sub,
            bus.consume(stream, group="g", consumer="c") as group,
        ):
            await bus.publish(stream, {"n": 1})
            assert (await take(sub)).event == {"n": 1}
            assert (await take(group)).event == {"n": 1}


class TestLimitsAndErrors:
    async def test_streams_keep_only_the_newest_maxlen_events(self, bus_kit: BusKit) -> None:
        bus = bus_kit.bus(maxlen=5)
        stream = unique("trim")
        async with bus.consume(stream, group="slow", consumer="c") as messages:
            for n in range(8):
                await bus.publish(stream, {"n": n})
            received = [(await take(messages)).event["n"] for _ in range(5)]
        assert received == [3, 4, 5, 6, 7]

    async def test_an_event_that_is_not_json_is_rejected(self, bus_kit: BusKit) -> None:
        bus = bus_kit.bus()
        with pytest.raises(InvalidEventError):
            await bus.publish(unique("bad"), {"when": object()})
        with pytest.raises(InvalidEventError):
            await bus.publish(unique("bad"), {"x": float("nan")})
        with pytest.raises(InvalidEventError):
            await bus.publish(unique("bad"), ["not", "a", "mapping"])  # type: ignore[arg-type]

    async def test_bad_names_are_rejected(self, bus_kit: BusKit) -> None:
        bus = bus_kit.bus()
        with pytest.raises(ValueError):
            await bus.publish("", {"n": 1})
        with pytest.raises(ValueError):
            bus.consume("ok", group="has space", consumer="c")

    async def test_closing_the_bus_ends_waiting_consumers_and_subscribers(
        self, bus_kit: BusKit
    ) -> None:
        bus = bus_kit.bus()
        stream = unique("closing")
        async with (
            bus.consume(stream, group="g", consumer="c") as messages,
            bus.subscribe(stream) as sub,
        ):
            waiting = asyncio.create_task(anext(messages, None))
            listening = asyncio.create_task(anext(sub, None))
            await asyncio.sleep(0)
            await bus.close()
            assert await within(waiting) is None
            assert await within(listening) is None
        with pytest.raises(BusClosedError):
            await bus.publish(stream, {"n": 1})
        with pytest.raises(BusClosedError):
            bus.subscribe(stream)
