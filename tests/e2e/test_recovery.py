"""History, recovery and presence across real daphne processes and one real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest

import realtime
from tests.support.redis_server import RedisServer
from tests.support.wsclient import Client

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
FAST = {"RATE": 10000.0, "BURST": 10000, "HEARTBEAT_INTERVAL": 0.5}


async def subscribe(client, group, **kw):
    ack = await client.request("rt.subscribe", {"group": group, **kw})
    assert ack["type"] == "rt.ack", ack
    return ack["data"]


async def events(client, count, timeout=10):
    return [await client.next_event(timeout) for _ in range(count)]


async def publish(group, count, start=0):
    for n in range(start, start + count):
        await realtime.anotify(group, "test.say", {"text": f"m{n}", "n": n})


async def test_reconnect_to_another_process_replays_1000_missed_once(
    daphne, redis_layer
):
    one, _, three = (daphne(redis_url=redis_layer, **FAST) for _ in range(3))
    client = await Client.open(f"{one.url}/ws/")
    await subscribe(client, "public.rec")
    await publish("public.rec", 1)
    first = await client.next_event()
    await client.close()
    await publish("public.rec", 1000, start=1)  # missed while away
    client = await Client.open(f"{three.url}/ws/")
    started = time.monotonic()
    ack = await subscribe(
        client, "public.rec", since=first["seq"], epoch=(await _epoch("public.rec"))
    )
    assert (ack["recovered"], ack["seq"]) == (True, 1001)
    replayed = await events(client, 1000)
    replay_seconds = time.monotonic() - started
    assert [e["seq"] for e in replayed] == list(range(2, 1002))
    assert [e["data"]["n"] for e in replayed] == list(range(1, 1001))
    await publish("public.rec", 1, start=1001)
    live = await client.next_event()
    assert (live["seq"], live["data"]["n"]) == (1002, 1001)
    with pytest.raises(TimeoutError):
        await client.next_event(timeout=0.3)
    await client.close()
    assert replay_seconds < 10


async def _epoch(group):
    from realtime.history import position

    return (await position(group))[1]


async def test_publishing_during_replay_loses_and_duplicates_nothing(
    daphne, redis_layer
):
    _one, two = (daphne(redis_url=redis_layer, **FAST) for _ in range(2))
    await publish("public.busy", 500)
    client = await Client.open(f"{two.url}/ws/")
    publisher = asyncio.create_task(publish("public.busy", 300, start=500))
    ack = await subscribe(client, "public.busy", since=0)
    assert ack["recovered"] is True
    await publisher
    received = await events(client, 800)
    assert [e["seq"] for e in received] == list(range(1, 801))
    with pytest.raises(TimeoutError):
        await client.next_event(timeout=0.3)
    await client.close()


async def test_trimmed_history_is_not_recovered(daphne, redis_layer, settings):
    settings.REALTIME = {**settings.REALTIME, "HISTORY_SIZE": 50}
    server = daphne(redis_url=redis_layer, **FAST)
    await publish("public.trim", 200)
    client = await Client.open(f"{server.url}/ws/")
    ack = await subscribe(
        client, "public.trim", since=100, epoch=await _epoch("public.trim")
    )
    assert (ack["recovered"], ack["seq"]) == (False, 200)
    await publish("public.trim", 1, start=200)
    assert (await client.next_event())["seq"] == 201  # live continues from the ack
    ok = await subscribe(
        client, "public.trim", since=160, epoch=await _epoch("public.trim")
    )
    assert ok["recovered"] is True
    assert [e["seq"] for e in await events(client, 41)] == list(range(161, 202))
    await client.close()


async def test_redis_restart_gives_a_new_epoch(daphne, settings):
    from channels.layers import channel_layers

    from realtime import backends

    redis_server = RedisServer()
    redis_server.start()
    try:
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [redis_server.url]},
            }
        }
        server = daphne(redis_url=redis_server.url, **FAST)
        await publish("public.ep", 5)
        old_epoch = await _epoch("public.ep")
        redis_server.stop()
        redis_server.start()  # same port, empty: the history store was reset
        channel_layers.backends = {}
        backends.reset()
        client = await _open_when_ready(f"{server.url}/ws/")
        await publish("public.ep", 2, start=5)
        ack = await subscribe(client, "public.ep", since=5, epoch=old_epoch)
        assert ack["recovered"] is False
        assert ack["epoch"] != old_epoch
        assert ack["seq"] == 2
        await publish("public.ep", 1, start=7)
        live = await client.next_event()  # the server re-joined the group by itself
        assert (live["seq"], live["data"]["n"]) == (3, 7)
        await client.close()
    finally:
        redis_server.stop()


async def _open_when_ready(url):
    return await Client.open(url)


async def test_presence_across_processes_and_after_sigkill(daphne, redis_layer, users):
    one, two = (daphne(redis_url=redis_layer, **FAST) for _ in range(2))
    alice = await Client.open(f"{one.url}/ws/", headers=users["alice"])
    await subscribe(alice, "room.1")
    bob_tabs = [
        await Client.open(f"{two.url}/ws/", headers=users["bob"]) for _ in range(2)
    ]
    for tab in bob_tabs:
        await subscribe(tab, "room.1")
    joins = await _until(alice, "rt.presence.join", "bob")
    assert joins["group"] == "room.1"
    for client in (alice, bob_tabs[0]):
        state = await client.request("rt.presence", {"group": "room.1"})
        assert sorted(m["username"] for m in state["data"]["members"]) == [
            "alice",
            "bob",
        ]
        assert state["data"]["connections"] == 3
    two.kill()  # SIGKILL: no cleanup, bob's entries just stop being renewed
    started = time.monotonic()
    left = await _until(alice, "rt.presence.leave", "bob", timeout=10)
    elapsed = time.monotonic() - started
    assert left["data"]["username"] == "bob"
    assert elapsed < 6  # lease 3 x 0.5 s, swept every 0.5 s: about 2 s
    state = await alice.request("rt.presence", {"group": "room.1"})
    assert [m["username"] for m in state["data"]["members"]] == ["alice"]
    await alice.close()


async def _until(client, type_, username, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        frame = await client.next_event(max(0.01, deadline - time.monotonic()))
        if frame["type"] == type_ and frame["data"].get("username") == username:
            return frame


@pytest.fixture
def users(e2e_users):
    return {
        name: {"Authorization": f"Token {info['token']}"}
        for name, info in e2e_users.items()
    }


PUBSUB = "channels_redis.pubsub.RedisPubSubChannelLayer"


async def test_pubsub_layer_delivers_and_recovers_across_processes(
    daphne, redis_layer, settings
):
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": PUBSUB, "CONFIG": {"hosts": [redis_layer]}}
    }
    channel_layers.backends = {}
    one, two = (daphne(redis_url=redis_layer, layer=PUBSUB, **FAST) for _ in range(2))
    listener = await Client.open(f"{one.url}/ws/")
    await subscribe(listener, "public.ps")
    sender = await Client.open(f"{two.url}/ws/")
    reply = await sender.request(
        "test.say", {"group": "public.ps", "text": "via pubsub"}
    )
    first = await listener.next_event()
    assert (first["data"]["text"], first["seq"]) == ("via pubsub", reply["data"]["seq"])
    await listener.close()
    await publish("public.ps", 20, start=1)  # from this process, through pub/sub
    again = await Client.open(f"{two.url}/ws/")
    ack = await subscribe(
        again, "public.ps", since=first["seq"], epoch=await _epoch("public.ps")
    )
    assert ack["recovered"] is True
    assert [e["data"]["n"] for e in await events(again, 20)] == list(range(1, 21))
    await again.close()
    await sender.close()
