"""No silent loss: every event notify() accepted reaches each subscribed socket once
and in order, or the socket is told (``rt.reset`` / ``recovered: false``).

Real daphne processes, real redis-servers of the tests' own, real WebSocket clients;
the test process publishes with the real sync ``notify()`` like a view or a task.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import redis
from channels.layers import channel_layers

import realtime
from realtime import backends
from realtime.exceptions import NotifyFailed
from realtime.settings import realtime_settings
from tests.support.redis_server import RedisServer
from tests.support.wsclient import Client

pytestmark = [pytest.mark.e2e]

CORE = "channels_redis.core.RedisChannelLayer"
PUBSUB = "channels_redis.pubsub.RedisPubSubChannelLayer"


def publish_through(settings, layer: str, *hosts: str, **realtime: object) -> None:
    """Make this test process's notify() publish like the servers' processes."""
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": layer, "CONFIG": {"hosts": list(hosts)}}
    }
    settings.REALTIME = {**settings.REALTIME, "NOTIFY_TIMEOUT": 2.0, **realtime}
    channel_layers.backends = {}
    backends.reset()
    realtime_settings.reload()


async def subscribe(url: str, group: str, **data: object) -> tuple[Client, dict]:
    client = await Client.open(f"{url}/ws/")
    ack = await client.request("rt.subscribe", {"group": group, **data})
    assert ack["type"] == "rt.ack", ack
    return client, ack["data"]


async def collect(client: Client, group: str, count: int, timeout: float) -> list[dict]:
    """Frames of ``group`` (events and rt.reset) until ``count`` events arrived."""
    frames: list[dict] = []
    deadline = time.monotonic() + timeout
    events = 0
    while events < count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            frame = await client.next_event(timeout=left)
        except TimeoutError:
            break
        if frame.get("group") != group:
            continue
        if frame["type"].startswith("rt.presence"):
            continue
        frames.append(frame)
        if not frame["type"].startswith("rt."):
            events += 1
    return frames


def texts(frames: list[dict]) -> list[str]:
    return [f["data"]["text"] for f in frames if not f["type"].startswith("rt.")]


def notify_many(group: str, prefix: str, count: int, **kw: object) -> None:
    for n in range(count):
        realtime.notify(group, "test.note", {"text": f"{prefix}{n}", "n": n}, **kw)


# -- 1/2: a connected socket across a history restart --------------------------------


@pytest.mark.parametrize("layer", [CORE, PUBSUB])
def test_connected_socket_gets_events_after_redis_restarts_empty(
    daphne, own_redis, loop, settings, layer
):
    """Redis restarted empty: the group's seqs start again at 1 in a new epoch. A
    connected socket is told (rt.reset) and then gets every new event."""
    server = daphne(redis_url=own_redis.url, layer=layer, RATE=1000.0, BURST=1000)
    publish_through(settings, layer, own_redis.url)
    group = "public.restart"
    client, ack = loop.run_until_complete(subscribe(server.url, group))
    notify_many(group, "old", 5)
    before = loop.run_until_complete(collect(client, group, 5, 10))
    assert texts(before) == [f"old{n}" for n in range(5)]
    old_epoch = before[0].get("epoch") or ack["epoch"]

    own_redis.stop()
    own_redis.start()
    deadline = time.monotonic() + 15
    sent = 0
    while time.monotonic() < deadline:  # the layer reconnects on its own schedule
        try:
            notify_many(group, "new", 1)
            sent = 1
            break
        except NotifyFailed:
            time.sleep(0.2)
    assert sent, "notify() never succeeded after the restart"
    # The servers rejoined the group: the next events must all arrive.
    notify_many(group, "new", 0)
    frames = loop.run_until_complete(collect(client, group, 1, 15))
    resets = [f for f in frames if f["type"] == "rt.reset"]
    assert texts(frames) == ["new0"], frames
    assert resets and resets[0]["data"]["epoch"] != old_epoch, frames
    assert resets[0]["data"]["reason"] == "epoch_changed"
    # and nothing is filtered afterwards: seqs 2.. of the new epoch
    notify_many(group, "more", 5)
    more = loop.run_until_complete(collect(client, group, 5, 10))
    assert texts(more) == [f"more{n}" for n in range(5)]
    loop.run_until_complete(client.close())


def test_connected_socket_gets_events_after_the_group_idles_past_its_ttl(
    daphne, own_redis, loop, settings
):
    """A room quiet for longer than HISTORY_TTL: the next events reach the sockets
    that stayed connected (they reached 0 of 5 before)."""
    server = daphne(redis_url=own_redis.url, HISTORY_TTL=2, RATE=1000.0, BURST=1000)
    publish_through(settings, CORE, own_redis.url, HISTORY_TTL=2)
    group = "public.idle"
    client, _ack = loop.run_until_complete(subscribe(server.url, group))
    notify_many(group, "a", 5)
    assert texts(loop.run_until_complete(collect(client, group, 5, 10))) == [
        f"a{n}" for n in range(5)
    ]
    log = redis.Redis.from_url(own_redis.url)
    deadline = time.monotonic() + 10
    while log.exists(f"rt:log:{{{group}}}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not log.exists(f"rt:log:{{{group}}}"), "the log never expired"
    notify_many(group, "b", 5)
    frames = loop.run_until_complete(collect(client, group, 5, 10))
    assert texts(frames) == [f"b{n}" for n in range(5)], frames
    # A client that comes back later with the old position is told the truth.
    events = [f for f in frames if not f["type"].startswith("rt.")]
    assert [e["seq"] for e in events] == sorted({e["seq"] for e in events})
    log.close()
    loop.run_until_complete(client.close())


# -- 2: a burst of notify() calls on the core layer ---------------------------------


@pytest.mark.parametrize("layer", [CORE, PUBSUB])
def test_a_burst_of_1000_notify_calls_reaches_every_socket(
    daphne, own_redis, loop, settings, layer
):
    """1,000 notify() calls in a loop (a bulk update firing post_save) reach sockets
    on two processes, with and without history, each once and in order."""
    servers = [
        daphne(redis_url=own_redis.url, layer=layer, RATE=1000.0, BURST=1000)
        for _ in range(2)
    ]
    publish_through(settings, layer, own_redis.url)
    kept, plain = "public.burst-h", "public.burst-n"

    async def open_all():
        return [
            await subscribe(server.url, group)
            for server in servers
            for group in (kept, plain)
        ]

    clients = loop.run_until_complete(open_all())
    for n in range(1000):
        realtime.notify(kept, "test.note", {"text": f"h{n}", "n": n})
        realtime.notify(plain, "test.note", {"text": f"p{n}", "n": n}, history=False)

    async def read_all():
        return await asyncio.gather(
            *(collect(client, ack["group"], 1000, 30) for client, ack in clients)
        )

    results = loop.run_until_complete(read_all())
    for (_client, ack), frames in zip(clients, results, strict=True):
        tag = "h" if ack["group"] == kept else "p"
        got = texts(frames)
        assert got == [f"{tag}{n}" for n in range(1000)], (
            f"{ack['group']}: {len(got)} of 1000, "
            f"{[f for f in frames if f['type'].startswith('rt.')][:3]}"
        )
    for client, _ack in clients:
        loop.run_until_complete(client.close())


# -- 3: concurrent first subscribes on a fresh process ------------------------------


@pytest.mark.parametrize("layer", [CORE, PUBSUB])
def test_fresh_process_serves_a_storm_of_first_subscribes(
    daphne, own_redis, loop, layer
):
    """Clients that connect the moment a new process opens its port all subscribe."""
    failures: list[dict] = []
    for _round in range(3):
        server = daphne(redis_url=own_redis.url, layer=layer, RATE=1000.0, BURST=1000)

        async def storm(url: str = server.url) -> list[dict]:
            async def one(n: int) -> dict:
                client = await Client.open(f"{url}/ws/")
                try:
                    return await client.request(
                        "rt.subscribe", {"group": f"public.storm{n % 4}"}
                    )
                finally:
                    await client.close()

            return await asyncio.gather(*(one(n) for n in range(24)))

        replies = loop.run_until_complete(storm())
        failures += [r for r in replies if r["type"] != "rt.ack"]
        server.stop()
    assert failures == []


# -- 6: a Redis shard restarted empty is noticed within seconds ---------------------


@pytest.mark.parametrize("layer", [CORE, PUBSUB])
def test_a_shard_restarted_empty_is_noticed_within_seconds(
    daphne, loop, settings, layer
):
    """Two shards; the shard that holds a group restarts empty. Its sockets get
    events again within seconds, not at the periodic re-join (up to 30 s)."""
    shards = [RedisServer(), RedisServer()]
    for shard in shards:
        shard.start()
    try:
        hosts = [shard.url for shard in shards]
        env = {"RT_LAYER_HOSTS": ",".join(hosts)}
        server = daphne(
            redis_url=hosts[0], layer=layer, env=env, RATE=1000.0, BURST=1000
        )
        publish_through(settings, layer, *hosts)
        layer_obj = channel_layers["default"]
        # A group whose layer entry lives on the second shard.
        group = next(
            f"public.shard{n}"
            for n in range(100)
            if _shard_of(layer_obj, f"public.shard{n}") == 1
        )
        client, _ack = loop.run_until_complete(subscribe(server.url, group))
        realtime.notify(group, "test.note", {"text": "before"}, history=False)
        assert texts(loop.run_until_complete(collect(client, group, 1, 10))) == [
            "before"
        ]
        shards[1].stop()
        shards[1].start()
        started = time.monotonic()
        got: list[dict] = []
        while time.monotonic() - started < 12 and not texts(got):
            try:
                realtime.notify(group, "test.note", {"text": "after"}, history=False)
            except NotifyFailed:
                pass
            got += loop.run_until_complete(collect(client, group, 1, 0.5))
        took = time.monotonic() - started
        assert "after" in texts(got), f"nothing after {took:.1f}s: {got}"
        assert took < 8, took
        loop.run_until_complete(client.close())
    finally:
        for shard in shards:
            shard.stop()


def _shard_of(layer, group: str) -> int:
    if hasattr(type(layer), "consistent_hash"):  # core
        return layer.consistent_hash(group)
    from channels_redis.pubsub import _consistent_hash

    return _consistent_hash(f"asgi__group__{group}", 2)


# -- 3: a hub channel over capacity is counted, logged at WARNING and repaired ------


@pytest.mark.parametrize("form", ["sync", "async"])
def test_a_full_hub_channel_is_counted_and_logged(redis_layer, settings, caplog, form):
    """A process that does not drain its channel: past HUB_CAPACITY the layer
    cannot hold more; each publish says so at WARNING and in the lost counter."""
    from asgiref.sync import async_to_sync
    from prometheus_client import REGISTRY

    from realtime.layers import get_layer, new_hub_channel

    settings.REALTIME = {**settings.REALTIME, "HUB_CAPACITY": 5}
    realtime_settings.reload()
    layer = get_layer()

    async def stalled_hub() -> str:
        channel = await new_hub_channel(layer)
        await layer.group_add("public.full", channel)
        return channel

    async_to_sync(stalled_hub)()

    def lost() -> float:
        value = REGISTRY.get_sample_value(
            "realtime_events_lost_total", {"reason": "layer_capacity"}
        )
        return value or 0.0

    before = lost()
    caplog.set_level(logging.WARNING)
    for n in range(8):
        if form == "sync":
            realtime.notify("public.full", "test.note", {"text": f"e{n}"})
        else:
            async_to_sync(realtime.anotify)(
                "public.full", "test.note", {"text": f"e{n}"}
            )
    assert lost() - before == 3
    warnings = [r for r in caplog.records if "over capacity" in r.getMessage()]
    assert len(warnings) == 3 and all(r.levelno == logging.WARNING for r in warnings)
    assert "public.full" in warnings[0].getMessage()
