"""realtime.hub: fan-out of one group event to this process's subscribers, group
membership in the channel layer, and the arrival order history reads are judged by.

The subscribers are small in-memory connections (the ``Connection`` protocol), so
the hub is tested alone: no consumer, no server, no Redis.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest
from channels.layers import BaseChannelLayer, InMemoryChannelLayer, channel_layers

from realtime.backends import get_backend
from realtime.connection import Connection
from realtime.hub import get_hub
from realtime.live import Event

WAIT = 5.0  # seconds any awaited delivery may take before the test fails


class Subscriber:
    """A connection that records what the hub pushes to it.

    ``gate`` makes it a slow socket: each push starts a write that waits for the gate
    (a send that suspends), as the consumer's outbox does for a full socket.
    """

    def __init__(self, name: str, *, gate: asyncio.Event | None = None) -> None:
        self.connection_id = name
        self.user = None
        self.scope: dict[str, Any] = {}
        self.log = logging.getLogger(f"tests.hub.{name}")
        self.subs: dict[str, Any] = {}
        self.token_key: str | None = None
        self.session_key: str | None = None
        self.personal_group: str | None = None
        self.ephemeral_events: dict[str, list] = {}
        self.presence_groups: list[str] = []
        self.close_code: int | None = None
        self.gate = gate
        self.pushed: list[Event] = []  # in the order push() was called
        self.written: list[Event] = []  # what a slow socket finished writing
        self.arrived = asyncio.Event()
        self._writes: set[asyncio.Task] = set()

    def push(self, event: Event) -> None:
        self.pushed.append(event)
        self.arrived.set()
        if self.gate is not None:
            task = asyncio.ensure_future(self._write(event))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _write(self, event: Event) -> None:
        assert self.gate is not None
        await self.gate.wait()
        self.written.append(event)

    async def close(self, error: Any = None, code: int = 1000) -> None:
        self.close_code = code

    def tick(self, now: float) -> None:
        return None

    def get_presence_meta(self) -> dict[str, Any]:
        return {}

    def mark_reset(self, group: str, reason: str) -> None:
        return None

    def flush_reset(self, group: str) -> None:
        return None

    def check_position(self, group: str, epoch: str, seq: int) -> None:
        return None

    async def _ack(self, id: str | None, data: Any = None) -> None:
        return None


class Broken(Subscriber):
    """A connection whose push raises (a socket torn down under the hub's feet)."""

    def push(self, event: Event) -> None:
        raise ConnectionResetError("gone")


def typed(subscriber: Subscriber) -> Connection:
    """The hub's signatures take a Connection: the test subscribers are ones."""
    connection: Connection = subscriber
    return connection


def event(group: str, n: int, **extra: Any) -> Event:
    text = orjson.dumps(
        {"type": "test.note", "group": group, "data": {"text": "t", "n": n}}
    ).decode()
    return Event({"group": group, "event": "test.note", "text": text, **extra})


async def test_dispatch_reaches_each_subscriber_of_the_group_once():
    hub = await get_hub()
    room = [Subscriber(f"room-{i}") for i in range(3)]
    elsewhere = Subscriber("lobby")
    for subscriber in room:
        await hub.join("room.1", typed(subscriber))
    await hub.join("room.1", typed(room[0]))  # a second join adds no second copy
    await hub.join("lobby", typed(elsewhere))

    sent = event("room.1", 1)
    await hub.dispatch(sent)

    assert [s.pushed for s in room] == [[sent], [sent], [sent]]
    assert elsewhere.pushed == []


async def test_dispatch_does_not_wait_for_a_slow_subscriber():
    hub = await get_hub()
    gate = asyncio.Event()
    slow = Subscriber("slow", gate=gate)
    fast = [Subscriber("fast-1"), Subscriber("fast-2")]
    await hub.join("room.1", typed(slow))
    for subscriber in fast:
        await hub.join("room.1", typed(subscriber))

    events = [event("room.1", n) for n in range(1, 4)]
    for sent in events:
        # Bounded: a dispatch that awaited the slow socket's write would hang here.
        await asyncio.wait_for(hub.dispatch(sent), WAIT)

    assert [s.pushed for s in fast] == [events, events]
    assert slow.pushed == events and slow.written == []  # its writes still wait
    gate.set()
    async with asyncio.timeout(WAIT):
        while len(slow.written) < len(events):
            await asyncio.sleep(0)
    assert slow.written == events  # in order, once each


async def test_a_subscriber_that_raises_does_not_stop_the_others(caplog):
    hub = await get_hub()
    before, broken, after = Subscriber("before"), Broken("broken"), Subscriber("after")
    for subscriber in (before, broken, after):
        await hub.join("room.1", typed(subscriber))

    sent = event("room.1", 1)
    with caplog.at_level(logging.ERROR):
        await hub.dispatch(sent)

    assert before.pushed == [sent] and after.pushed == [sent]
    failures = [r for r in caplog.records if r.name == "tests.hub.broken"]
    assert [r.getMessage() for r in failures] == ["delivery to broken failed"]
    assert failures[0].exc_info is not None
    assert failures[0].exc_info[0] is ConnectionResetError


async def test_leave_stops_delivery_and_the_last_leave_forgets_the_group():
    hub = await get_hub()
    alice, bob = Subscriber("alice"), Subscriber("bob")
    await hub.join("room.1", typed(alice))
    await hub.join("room.1", typed(bob))

    await hub.leave("room.1", typed(alice))
    first = event("room.1", 1)
    await hub.dispatch(first)
    assert alice.pushed == [] and bob.pushed == [first]
    assert set(hub.groups) == {"room.1"}

    await hub.leave("room.1", typed(bob))
    await hub.leave("room.1", typed(bob))  # leaving twice is harmless
    await hub.leave("never.joined", typed(bob))
    await hub.dispatch(event("room.1", 2))
    assert bob.pushed == [first]
    assert hub.groups == {}


async def test_every_dispatched_event_gets_the_next_arrival_number():
    hub = await get_hub()
    subscriber = Subscriber("s")
    await hub.join("room.1", typed(subscriber))

    # Events of groups nobody here follows count too: arrival is the order in which
    # events reached this process, whoever they were for.
    sent = [event("room.1", 1), event("nobody.here", 1), event("room.1", 2)]
    for one in sent:
        await hub.dispatch(one)

    assert [one.arrival for one in sent] == [1, 2, 3]
    assert [one.arrival for one in subscriber.pushed] == [1, 3]


async def test_sockets_asking_for_the_same_gap_in_one_turn_share_one_read():
    hub = await get_hub()
    backend = get_backend()
    for n in range(1, 4):
        _, epoch = await backend.append("room.h", '{"seq":', f',"n":{n}}}')

    first = hub.read_since("room.h", 1, epoch)
    second = hub.read_since("room.h", 1, epoch)
    other_gap = hub.read_since("room.h", 2, epoch)
    assert second is first and other_gap is not first

    found = await asyncio.wait_for(first.task, WAIT)
    assert found.recovered and (found.seq, found.epoch) == (3, epoch)
    assert [s for s, _ in found.frames] == [2, 3]
    assert orjson.loads(found.frames[0][1]) == {"seq": 2, "n": 2}
    # Once sent, a read is not handed out again: a later gap may need newer frames.
    assert hub.read_since("room.h", 1, epoch) is not first


async def test_a_read_is_stamped_with_the_events_that_arrived_before_it():
    hub = await get_hub()
    _, epoch = await get_backend().append("room.h", '{"seq":', "}")
    await hub.dispatch(event("room.h", 1))
    await hub.dispatch(event("room.h", 2))

    read = hub.read_since("room.h", 0, epoch)
    await asyncio.wait_for(read.task, WAIT)
    later = event("room.h", 3)
    await hub.dispatch(later)

    # Events with arrival <= issued were published before the read was sent, so
    # the read covers them; a later arrival may be newer than what it returned.
    assert read.issued == 2
    assert later.arrival == 3 > read.issued


# -- with a channel layer shared between processes ------------------------------------


class SharedLayer(BaseChannelLayer):
    """Channels' in-memory layer presented as a layer other processes could share
    (it is no InMemoryChannelLayer): the hub then joins each group in it and reads
    events from it, as it does with Redis."""

    extensions = ["groups", "flush"]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inner = InMemoryChannelLayer()

    async def new_channel(self, prefix: str = "specific.") -> str:
        return await self.inner.new_channel(prefix)

    async def send(self, channel: str, message: dict) -> None:
        await self.inner.send(channel, message)

    async def receive(self, channel: str) -> dict:
        return await self.inner.receive(channel)

    async def group_add(self, group: str, channel: str) -> None:
        await self.inner.group_add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        await self.inner.group_discard(group, channel)

    async def group_send(self, group: str, message: dict) -> None:
        await self.inner.group_send(group, message)

    async def flush(self) -> None:
        await self.inner.flush()

    def members(self, group: str) -> set[str]:
        return set(self.inner.groups.get(group, {}))


@pytest.fixture
def shared_layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": f"{__name__}.{SharedLayer.__qualname__}"}
    }
    channel_layers.backends = {}
    return channel_layers["default"]


async def test_one_layer_membership_per_group_whatever_the_local_subscribers(
    shared_layer,
):
    hub = await get_hub()
    alice, bob = Subscriber("alice"), Subscriber("bob")
    await hub.join("room.1", typed(alice))
    await hub.join("room.1", typed(bob))
    assert len(shared_layer.members("room.1")) == 1  # the hub's channel, once

    await shared_layer.group_send(
        "room.1",
        {
            # The layer message every process's hub reads (a cross-process contract).
            "type": "rt.event",
            "group": "room.1",
            "event": "test.note",
            "text": event("room.1", 1).text,
        },
    )
    async with asyncio.timeout(WAIT):
        await alice.arrived.wait()
        await bob.arrived.wait()
    assert [e.text for e in alice.pushed] == [event("room.1", 1).text]
    assert [e.text for e in bob.pushed] == [event("room.1", 1).text]

    await hub.leave("room.1", typed(alice))
    assert len(shared_layer.members("room.1")) == 1  # bob still follows it
    await hub.leave("room.1", typed(bob))
    assert shared_layer.members("room.1") == set()
