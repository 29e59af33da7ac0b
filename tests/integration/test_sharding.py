"""Several Redis shards: each group's history and presence live on the server the
channel layer routes the group through, notify() reaches it from sync and async code,
and one shard down affects only its own groups."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels_redis.core import RedisChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError

import realtime
from realtime import backends
from realtime.backends import get_backend
from realtime.backends.shards import state_ring
from realtime.exceptions import NotifyFailed
from realtime.fastpath import fast_path
from realtime.layers import get_layer, shard_of
from realtime.testing import RealtimeCommunicator, capture_notifications
from tests.asgi import application
from tests.support.shards import (
    CORE,
    PUBSUB,
    commands_on,
    keys_on,
    redis_servers,
    scripts_run,
    sharded_layer,
)

pytestmark = pytest.mark.timeout(120)

GROUPS = [f"public.shard-{index}" for index in range(24)]


@pytest.fixture(scope="module")
def three():
    with redis_servers(3) as servers:
        yield servers


@pytest.fixture
def shards(three, settings, request):
    """The three servers, flushed, as this test's channel layer hosts."""
    for server in three:
        if server.proc is None:
            server.start()
        server.flush()
    kind = getattr(request, "param", CORE)
    settings.CHANNEL_LAYERS = sharded_layer(three, kind)
    channel_layers.backends = {}
    backends.reset()
    return three


def by_shard(groups: list[str]) -> dict[int, list[str]]:
    """``groups`` by the shard the backend keeps them on (the layer's own choice:
    test_history_and_presence_live_on_each_groups_shard)."""
    ring = state_ring()
    found: dict[int, list[str]] = {}
    for group in groups:
        found.setdefault(ring.of_group(group), []).append(group)
    return found


@pytest.mark.parametrize("shards", [CORE, PUBSUB], indirect=True)
async def test_history_and_presence_live_on_each_groups_shard(shards):
    backend = get_backend()
    for group in GROUPS:
        await realtime.anotify(group, "test.note", {"text": group})
        await backend.presence_join(group, f"c-{group}", "u1", {"name": "a"}, 30)
    layer = get_layer()
    held = [keys_on(server) for server in shards]
    for group in GROUPS:
        own = shard_of(layer, group)
        mine = {f"rt:log:{{{group}}}", f"rt:meta:{{{group}}}", f"rt:pc:{{{group}}}"}
        for index, keys in enumerate(held):
            if index == own:
                assert mine <= keys, (group, index)
            else:
                assert not mine & keys, (group, index)
    logs = [sum(1 for key in keys if key.startswith("rt:log:")) for keys in held]
    assert sum(logs) == len(GROUPS) and all(logs), logs  # every shard holds some
    # The backend's ring is the layer's own choice, group by group.
    ring = state_ring()
    assert [ring.of_group(g) for g in GROUPS] == [shard_of(layer, g) for g in GROUPS]
    # Recovery reads the group's shard; positions read every shard at once.
    for group in GROUPS[:6]:
        read = await backend.since(group, 0, None)
        assert read.recovered and [seq for seq, _ in read.frames] == [1]
        assert group in read.frames[0][1]
    positions = await backend.positions([*GROUPS, "public.never"])
    assert [seq for seq, _ in positions] == [1] * len(GROUPS) + [0]
    assert positions[-1] == (0, None)
    members = await backend.presence_state(GROUPS[0])
    assert (members.members, members.connections) == ([{"name": "a"}], 1)
    status = await backend.status()
    assert set(status["history"]) == set(GROUPS)
    assert set(status["presence"]) == set(GROUPS)
    await backend.close()


@pytest.mark.parametrize("shards", [CORE, PUBSUB], indirect=True)
@pytest.mark.django_db(transaction=True)
async def test_sync_and_async_notify_reach_subscribers_on_every_shard(shards):
    assert fast_path(history=True) is not None  # several hosts: still one trip
    groups = [found[0] for _, found in sorted(by_shard(GROUPS).items())]
    assert len(groups) == 3
    comm = RealtimeCommunicator(application, "/ws/")
    await comm.connect()
    for group in groups:
        ack = await comm.subscribe(group)
        assert ack["type"] == "rt.ack", ack

    def send_sync(group: str, text: str) -> None:
        realtime.notify(group, "test.note", {"text": text})

    for group in groups:
        await database_sync_to_async(send_sync)(group, "sync")
        assert await realtime.anotify(group, "test.note", {"text": "async"}) == 2
    got: dict[str, list[tuple[int, str]]] = {group: [] for group in groups}
    async with asyncio.timeout(10):
        while sum(len(events) for events in got.values()) < 2 * len(groups):
            event = await comm.receive_json_from(timeout=10)
            if event["type"] == "test.note":
                got[event["group"]].append((event["seq"], event["data"]["text"]))
    assert got == {group: [(1, "sync"), (2, "async")] for group in groups}
    # A second socket recovers each group from its own shard.
    late = RealtimeCommunicator(application, "/ws/")
    await late.connect()
    for group in groups:
        ack = await late.subscribe(group, since=0)
        assert ack["data"]["recovered"] is True, ack
        replay = [await late.receive_json_from(timeout=5) for _ in range(2)]
        assert [(e["seq"], e["data"]["text"]) for e in replay] == got[group]
    await comm.disconnect()
    await late.disconnect()


@pytest.mark.parametrize("shards", [CORE, PUBSUB], indirect=True)
@pytest.mark.django_db(transaction=True)
def test_a_sync_notify_costs_one_command_on_its_shard_and_none_elsewhere(shards):
    split = by_shard(GROUPS)
    for index, groups in split.items():
        realtime.notify(groups[0], "test.note", {"text": "warm up"})
        before = [commands_on(server) for server in shards]
        scripts = scripts_run(shards[index])
        for _ in range(50):
            realtime.notify(groups[0], "test.note", {"text": "x"})
        # One script call (one round trip) each, on the group's shard only.
        assert scripts_run(shards[index]) - scripts == 50
        after = [commands_on(server) for server in shards]
        # Each server also counts the INFO that read "before".
        spent = [b - a - 1 for a, b in zip(before, after, strict=True)]
        assert [bool(n) for n in spent] == [i == index for i in range(3)], spent


@pytest.mark.django_db(transaction=True)
def test_one_shard_down_fails_only_its_own_groups(shards):
    split = by_shard(GROUPS)
    realtime.notify(split[2][0], "test.note", {"text": "before"})
    shards[2].stop()
    try:
        for index in (0, 1):
            for group in split[index][:3]:
                realtime.notify(group, "test.note", {"text": "up"})
        with pytest.raises(NotifyFailed):
            realtime.notify(split[2][0], "test.note", {"text": "down"})
    finally:
        shards[2].start()  # empty again: the next test flushes the others


async def test_one_shard_down_leaves_the_others_async(shards):
    split = by_shard(GROUPS)
    backend = get_backend()
    shards[1].stop()
    try:
        for index in (0, 2):
            group = split[index][0]
            assert await realtime.anotify(group, "test.note", {"text": "up"}) == 1
            await backend.presence_join(group, "c1", "u1", {}, 30)
            assert (await backend.presence_state(group)).connections == 1
        with pytest.raises(NotifyFailed):
            await realtime.anotify(split[1][0], "test.note", {"text": "down"})
        # The process list is on every shard: one down loses nothing of it.
        await backend.register_process("p-1", {"id": "p-1", "beat": 1.0}, 30)
        assert [p["id"] for p in await backend.processes()] == ["p-1"]
        # Work over every shard goes on for the shards that answer.
        live, lost = split[0][0], split[1][0]
        positions = await backend.positions([live, lost])
        assert positions[0][0] == 1 and positions[1] == (0, None)
        await backend.presence_refresh([(live, "c1"), (lost, "c1")], 30)
        assert await backend.presence_sweep() == []
        status = await backend.status()
        assert live in status["history"] and status["unreachable"] == [shards[1].url]
        with pytest.raises(RedisConnectionError):
            await backend.positions([lost])  # nothing answered: say so
    finally:
        await backend.close()
        shards[1].start()


async def test_claims_spread_over_shards_and_stay_single_use(shards):
    backend = get_backend()
    keys = [f"ticket:{index}" for index in range(30)]
    for key in keys:
        assert await backend.claim(key, 5) is True
        assert await backend.claim(key, 5) is False
    ring = state_ring()
    held = [keys_on(server, "rt:claim:*") for server in shards]
    for key in keys:
        assert [f"rt:claim:{key}" in found for found in held] == [
            index == ring.of_key(key) for index in range(3)
        ]
    assert all(held)
    await backend.register_process("p-2", {"id": "p-2", "beat": 1.0}, 30)
    assert all("rt:proc:p-2" in keys_on(server) for server in shards)
    await backend.close()


@pytest.mark.parametrize("shards", [CORE, PUBSUB], indirect=True)
@pytest.mark.parametrize("form", ["sync", "async"])
@pytest.mark.django_db(transaction=True)
def test_events_without_history_reach_channels_on_every_shard(shards, form, loop):
    """Live delivery alone (no history to repair from): the core layer keeps each
    channel's messages on the host its name hashes to, which need not be the
    group's."""
    layer = get_layer()
    # Receivers as separate processes would be: one layer instance each, so each
    # has its own channel prefix and key, on the host that prefix hashes to.
    receivers = []
    if isinstance(layer, RedisChannelLayer):
        hosts = layer.hosts
        while {layer.consistent_hash(r.client_prefix + "!") for r in receivers} != {
            0,
            1,
            2,
        }:
            receivers.append(RedisChannelLayer(hosts=hosts))
    else:
        receivers = [layer] * 3

    async def join() -> list[tuple[Any, str]]:
        joined = []
        for receiver in receivers:
            for _ in range(2):
                channel = await receiver.new_channel()
                await receiver.group_add("public.live", channel)
                joined.append((receiver, channel))
        return joined

    channels = loop.run_until_complete(join())
    if form == "sync":
        realtime.notify("public.live", "test.note", {"text": "x"}, history=False)
    else:
        loop.run_until_complete(
            realtime.anotify("public.live", "test.note", {"text": "x"})
        )

    async def receive_all() -> list[dict]:
        async with asyncio.timeout(10):
            return [await receiver.receive(channel) for receiver, channel in channels]

    got = loop.run_until_complete(receive_all())
    assert len(got) == len(channels) >= 6
    assert [message["text"] for message in got] == [got[0]["text"]] * len(got)
    assert '"text":"x"' in got[0]["text"]


@pytest.mark.parametrize("shards", [CORE], indirect=True)
@pytest.mark.django_db(transaction=True)
def test_deliveries_to_a_restarted_shard_use_fresh_connections(shards, loop):
    """The core layer's messages for channels on other shards go out on pooled
    connections; a shard restarted meanwhile (its scripts forgotten, the old
    sockets dead) still gets the next event, and so do the others."""
    layer = get_layer()
    receivers: list[RedisChannelLayer] = []
    while {layer.consistent_hash(r.client_prefix + "!") for r in receivers} != {
        0,
        1,
        2,
    }:
        receivers.append(RedisChannelLayer(hosts=layer.hosts))
    group = next(g for g in GROUPS if layer.consistent_hash(g) == 0)

    async def join() -> list[tuple[Any, str]]:
        joined = []
        for receiver in receivers:
            channel = await receiver.new_channel()
            await receiver.group_add(group, channel)
            joined.append((receiver, channel))
        return joined

    async def receive_all() -> list[str]:
        async with asyncio.timeout(10):
            return [(await r.receive(c))["text"] for r, c in joined]

    joined = loop.run_until_complete(join())
    realtime.notify(group, "test.note", {"text": "one"}, history=False)
    assert all('"one"' in text for text in loop.run_until_complete(receive_all()))
    shards[1].stop()
    shards[1].start()
    realtime.notify(group, "test.note", {"text": "two"}, history=False)
    assert all('"two"' in text for text in loop.run_until_complete(receive_all()))


@pytest.mark.parametrize("shards", [CORE, PUBSUB], indirect=True)
@pytest.mark.django_db(transaction=True)
def test_a_batch_over_several_shards_goes_call_by_call(shards):
    """With several shards a batch's events go one by one, in call order: each
    group's history gets consecutive seqs on its own shard, and an event Redis
    refuses (its history key holds the wrong type) fails alone."""
    assert fast_path(history=True) is not None
    split = by_shard(GROUPS)
    groups = [split[index][0] for index in (0, 1, 2)]
    broken = split[1][1]
    client = redis.Redis.from_url(shards[1].url)
    client.set(f"rt:meta:{{{broken}}}", "not a hash")
    client.close()
    with (
        capture_notifications() as sent,
        pytest.raises(NotifyFailed) as raised,
        realtime.batch(),
    ):
        for round in range(2):
            for group in groups:
                realtime.notify(group, "test.note", {"text": f"{group} {round}"})
        realtime.notify(broken, "test.note", {"text": "refused"})
        realtime.notify(groups[0], "test.note", {"text": "after"})
    ((index, group, _type, why),) = raised.value.failures
    assert (index, group) == (6, broken) and "WRONGTYPE" in str(why)
    assert [(e["group"], e["seq"]) for e in sent] == [
        *((group, 1) for group in groups),
        *((group, 2) for group in groups),
        (groups[0], 3),
    ]

    async def read() -> list[list[int]]:
        backend = get_backend()
        reads = [await backend.since(group, 0, None) for group in groups]
        await backend.close()
        return [[seq for seq, _ in read.frames] for read in reads]

    assert async_to_sync(read)() == [[1, 2, 3], [1, 2], [1, 2]]


def test_status_names_a_shard_that_does_not_answer(shards):
    from django.core.management import call_command

    split = by_shard(GROUPS)
    for index in (0, 1, 2):
        realtime.notify(split[index][0], "test.note", {"text": "x"})
    shards[2].stop()
    try:
        out = io.StringIO()
        call_command("realtime_status", stdout=out)
        text = out.getvalue()
        assert f"unreachable: {shards[2].url}" in text, text
        assert split[0][0] in text and split[1][0] in text
        assert split[2][0] not in text
        out = io.StringIO()
        call_command("realtime_status", "--json", stdout=out)
        assert json.loads(out.getvalue())["unreachable"] == [shards[2].url]
    finally:
        shards[2].start()
