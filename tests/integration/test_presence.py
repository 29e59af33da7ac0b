"""Presence and ephemeral events through the communicator (memory backend)."""

import asyncio

import pytest
from django.test import override_settings

from realtime import presence
from realtime.testing import RealtimeCommunicator
from tests.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def alice(django_user_model):
    from channels.db import database_sync_to_async

    return await database_sync_to_async(django_user_model.objects.create_user)("alice")


@pytest.fixture
async def bob(django_user_model):
    from channels.db import database_sync_to_async

    return await database_sync_to_async(django_user_model.objects.create_user)("bob")


async def connect(user=None):
    comm = RealtimeCommunicator(application, "/ws/", user=user)
    assert (await comm.connect())[0]
    return comm


async def next_of(comm, type_, timeout=3, username=None):
    while True:
        frame = await comm.receive_frame(timeout)
        if frame["type"] == type_ and (
            username is None or frame["data"].get("username") == username
        ):
            return frame


async def test_join_and_leave_once_per_user(alice, bob):
    watcher = await connect(alice)
    await watcher.subscribe("room.1")
    tab1 = await connect(bob)
    await tab1.subscribe("room.1")
    own = await next_of(watcher, "rt.presence.join")
    assert own["data"]["username"] == "alice"  # subscribers see their own arrival
    joined = await next_of(watcher, "rt.presence.join")
    assert joined["group"] == "room.1"
    assert joined["data"] == {"id": bob.pk, "username": "bob", "color": "teal"}
    tab2 = await connect(bob)
    await tab2.subscribe("room.1")  # a second tab of bob: no second join
    state = await watcher.request("rt.presence", {"group": "room.1"})
    assert sorted(m["username"] for m in state["data"]["members"]) == ["alice", "bob"]
    assert state["data"]["connections"] == 3
    await tab1.disconnect()
    assert await watcher.receive_nothing(0.2)  # bob still has a tab open
    await tab2.disconnect()
    left = await next_of(watcher, "rt.presence.leave")
    assert left["data"]["username"] == "bob"
    assert [m["username"] for m in await presence.amembers("room.1")] == ["alice"]
    await watcher.disconnect()


async def test_anonymous_connections_are_counted_not_listed(alice):
    member = await connect(alice)
    await member.subscribe("public.lobby")
    anon = await connect()
    await anon.subscribe("public.lobby")
    state = await anon.request("rt.presence", {"group": "public.lobby"})
    assert state["data"]["members"] == [
        {"id": alice.pk, "username": "alice", "color": "teal"}
    ]
    assert state["data"]["anonymous"] == 1
    assert state["data"]["connections"] == 2
    await anon.disconnect()
    await member.disconnect()


async def test_presence_needs_a_subscription():
    comm = await connect()
    reply = await comm.request("rt.presence", {"group": "public.other"})
    assert reply["data"]["code"] == "forbidden"
    await comm.disconnect()


async def test_members_from_sync_code(alice):
    from channels.db import database_sync_to_async

    comm = await connect(alice)
    await comm.subscribe("room.2")
    found = await database_sync_to_async(presence.members)("room.2")
    assert [m["username"] for m in found] == ["alice"]
    await comm.disconnect()
    assert await database_sync_to_async(presence.members)("room.2") == []


async def test_typing_is_relayed_to_others_not_echoed(alice, bob):
    sender = await connect(alice)
    await sender.subscribe("room.1")
    other = await connect(bob)
    await other.subscribe("room.1")
    await next_of(sender, "rt.presence.join", username="bob")
    await sender.send_frame(
        {
            "type": "test.typing",
            "id": "t1",
            "group": "room.1",
            "data": {"typing": True, "user": {"id": 999, "username": "forged"}},
        }
    )
    assert (await sender.receive_frame())["type"] == "rt.ack"
    relayed = await next_of(other, "test.typing")
    assert relayed["group"] == "room.1"
    assert "seq" not in relayed  # ephemeral: no history
    assert relayed["data"] == {
        "typing": True,
        "user": {"id": alice.pk, "username": "alice"},
    }
    assert await sender.receive_nothing(0.2)  # not echoed to the sender
    await sender.disconnect()
    await other.disconnect()


async def test_typing_needs_subscription_and_valid_data(alice):
    comm = await connect(alice)
    await comm.subscribe("room.1")
    not_subscribed = await comm.request("test.typing", {"typing": True})
    assert not_subscribed["data"]["code"] == "bad_envelope"  # no group
    await comm.send_frame(
        {"type": "test.typing", "id": "x", "group": "room.2", "data": {"typing": True}}
    )
    assert (await comm.receive_event("rt.error"))["data"]["code"] == "forbidden"
    await comm.send_frame(
        {"type": "test.typing", "id": "y", "group": "room.1", "data": {"typing": "?"}}
    )
    assert (await comm.receive_event("rt.error"))["data"]["code"] == "invalid"
    await comm.disconnect()


@override_settings(REALTIME={"EPHEMERAL_RATE": 0.001, "EPHEMERAL_BURST": 2})
async def test_typing_is_rate_limited(alice):
    comm = await connect(alice)
    await comm.subscribe("room.1")
    codes = []
    for n in range(4):
        await comm.send_frame(
            {
                "type": "test.typing",
                "id": f"r{n}",
                "group": "room.1",
                "data": {"typing": True},
            }
        )
        reply = await comm.receive_frame()
        while reply.get("id") != f"r{n}":
            reply = await comm.receive_frame()
        codes.append(
            reply["type"] if reply["type"] == "rt.ack" else reply["data"]["code"]
        )
    assert codes == ["rt.ack", "rt.ack", "rate_limited", "rate_limited"]
    await comm.disconnect()


@override_settings(REALTIME={"HEARTBEAT_INTERVAL": 0.2, "HEARTBEAT_TIMEOUT": 30})
async def test_expired_presence_entry_leaves(alice, bob):
    """A crashed process stops renewing leases; another process's sweep sends leave."""
    from realtime.backends import get_backend

    watcher = await connect(alice)
    await watcher.subscribe("room.1")
    # bob's connection lives in a process that died: an entry nobody renews.
    await get_backend().presence_join(
        "room.1",
        "dead-process-conn",
        str(bob.pk),
        {"id": bob.pk, "username": "bob"},
        0.3,
    )
    started = asyncio.get_running_loop().time()
    left = await next_of(watcher, "rt.presence.leave", timeout=5)
    assert left["data"]["username"] == "bob"
    assert asyncio.get_running_loop().time() - started < 2
    await watcher.disconnect()


async def test_subscribe_hooks_run_once_per_group(alice):
    from tests.testapp.consumers import EchoConsumer

    seen = []

    class Hooked(EchoConsumer):
        async def on_subscribe(self, group):
            seen.append(("in", group, self.is_subscribed(group)))

        async def on_unsubscribe(self, group):
            seen.append(("out", group, self.is_subscribed(group)))

    comm = RealtimeCommunicator(Hooked.as_asgi(), "/ws/", user=alice)
    assert (await comm.connect())[0]
    await comm.subscribe("room.1")
    await comm.subscribe("room.1", since=0)  # a gap fill: not a second join
    await comm.subscribe("room.2")
    await comm.request("rt.unsubscribe", {"group": "room.2"})
    await comm.disconnect()
    for _ in range(100):
        if len(seen) == 4:
            break
        await asyncio.sleep(0.01)
    assert seen == [
        ("in", "room.1", True),
        ("in", "room.2", True),
        ("out", "room.2", False),
        ("out", "room.1", True),  # on close: still listed until cleanup ends
    ]


async def test_resubscribing_causes_no_presence_churn(alice, bob):
    watcher = await connect(alice)
    await watcher.subscribe("room.1")
    other = await connect(bob)
    await other.subscribe("room.1")
    await next_of(watcher, "rt.presence.join", username="bob")
    ack = await other.subscribe("room.1", since=0)  # e.g. a client filling a gap
    assert ack["type"] == "rt.ack"
    assert await watcher.receive_nothing(0.3)
    await other.disconnect()
    assert (await next_of(watcher, "rt.presence.leave"))["data"]["username"] == "bob"
    await watcher.disconnect()
