"""realtime.broker with one process: the broker chosen for each layer, and the local
broker (memory backend, this process's hubs) keeping seq, order and history as one.

The Redis-backed brokers (layer and script) are tested against a real redis-server in
tests/integration/test_broker_redis.py.
"""

from __future__ import annotations

import asyncio

import pytest

from realtime.backends import get_backend
from realtime.broker import Broker, LocalBroker, ScriptBroker, get_broker
from realtime.frames import EventFrame
from realtime.hub import get_hub
from realtime.live import Event

GROUP = "room.unit"


class Recorder:
    """Stands where a connection joins the hub: keeps every event it is pushed."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.arrived = asyncio.Event()

    def push(self, event: Event) -> None:
        self.events.append(event)
        self.arrived.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.events) < count:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def member():
    hub = await get_hub()
    recorder = Recorder()
    await hub.join(GROUP, recorder)
    yield recorder
    await hub.leave(GROUP, recorder)


def frame(n: int) -> EventFrame:
    return EventFrame(GROUP, "test.note", {"text": f"e{n}"}, 1)


def test_the_in_memory_layer_gets_the_local_broker():
    assert isinstance(get_broker(history=True), LocalBroker)
    assert isinstance(get_broker(history=False, exclude=True), LocalBroker)


def test_no_layer_gets_the_local_broker(settings):
    settings.CHANNEL_LAYERS = {}
    assert isinstance(get_broker(history=True), LocalBroker)


def test_every_broker_is_a_broker():
    assert issubclass(LocalBroker, Broker)
    assert issubclass(ScriptBroker, Broker)


async def test_history_seqs_grow_by_one_and_history_holds_what_was_delivered(member):
    broker = LocalBroker()
    seqs = [await broker.publish(frame(n), history=True) for n in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    await member.wait_for(5)
    assert [e.seq for e in member.events] == seqs
    assert [e.text for e in member.events] == [frame(n).text(n + 1) for n in range(5)]
    read = await get_backend().since(GROUP, 0, member.events[0].epoch)
    assert read.recovered and read.seq == 5
    # What history holds is byte for byte what was delivered.
    assert read.frames == [(e.seq, e.text) for e in member.events]


async def test_concurrent_publishes_get_distinct_seqs_delivered_in_order(member):
    broker = LocalBroker()
    seqs = await asyncio.gather(
        *(broker.publish(frame(n), history=True) for n in range(50))
    )
    assert sorted(seqs) == list(range(1, 51))
    await member.wait_for(50)
    assert [e.seq for e in member.events] == list(range(1, 51))
    read = await get_backend().since(GROUP, 0, member.events[0].epoch)
    assert read.frames == [(e.seq, e.text) for e in member.events]


async def test_without_history_nothing_is_numbered_or_stored(member):
    seq = await LocalBroker().publish(frame(0), history=False)
    assert seq is None
    await member.wait_for(1)
    assert member.events[0].seq is None
    assert member.events[0].text == frame(0).text(None)
    assert (await get_backend().positions([GROUP])) == [(0, None)]


async def test_exclude_travels_with_the_event(member):
    await LocalBroker().publish(frame(0), history=False, exclude="conn-1")
    await member.wait_for(1)
    assert member.events[0].exclude == "conn-1"


async def test_publish_sync_from_a_thread_reaches_the_servers_hub(member):
    # A view's thread: the sync bridge runs the publish on the loop of the hub.
    broker = get_broker(history=True)
    seq = await asyncio.to_thread(broker.publish_sync, frame(0), history=True)
    assert seq == 1
    await member.wait_for(1)
    assert member.events[0].text == frame(0).text(1)


async def test_groups_without_members_still_get_history():
    seq = await LocalBroker().publish(frame(0), history=True)
    read = await get_backend().since(GROUP, 0, None)
    assert seq == 1 and read.seq == 1
