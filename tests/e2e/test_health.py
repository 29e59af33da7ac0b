"""The readiness endpoint over a real daphne process, with Redis up and down."""

import asyncio
import time

import httpx
import pytest
import redis

from tests.support.redis_server import RedisServer
from tests.support.wsclient import Client

pytestmark = [pytest.mark.e2e]


def get(server):
    return httpx.get(f"http://127.0.0.1:{server.port}/realtime/health/", timeout=10)


def test_health_follows_redis(daphne):
    redis_server = RedisServer()
    redis_server.start()
    try:
        server = daphne(redis_url=redis_server.url)
        ok = get(server)
        assert ok.status_code == 200
        assert ok.json() == {"status": "ok", "backend": "ok", "channel_layer": "ok"}
        redis_server.stop()
        down = get(server)
        assert down.status_code == 503
        assert down.json()["status"] == "unavailable"
        redis_server.start()
        deadline = time.monotonic() + 10
        while get(server).status_code != 200:
            assert time.monotonic() < deadline, "did not become ready again"
            time.sleep(0.1)
    finally:
        redis_server.stop()


def test_health_on_the_embedded_default(daphne):
    server = daphne()
    assert get(server).json() == {
        "status": "ok",
        "backend": "ok",
        "channel_layer": "ok",
    }


CORE = "channels_redis.core.RedisChannelLayer"
PUBSUB = "channels_redis.pubsub.RedisPubSubChannelLayer"
SIZES = {
    b"zset": "zcard",
    b"list": "llen",
    b"hash": "hlen",
    b"set": "scard",
    b"string": "strlen",
}


def footprint(store: redis.Redis) -> dict[str, int]:
    """What a probe could leave behind on Redis: keys, their elements, pub/sub
    channels and subscriptions, client connections."""
    keys = store.keys("*")
    channels = store.pubsub_channels()
    return {
        "keys": len(keys),
        "elements": sum(
            getattr(store, SIZES[store.type(key)])(key)
            for key in keys
            if not key.startswith(b"rt:proc:")  # the heartbeat's JSON changes size
        ),
        "channels": len(channels),
        "subscriptions": sum(n for _, n in store.pubsub_numsub(*channels))
        if channels
        else 0,
        "connections": len(store.client_list()) - 1,  # not this one
    }


@pytest.mark.parametrize("layer", [CORE, PUBSUB])
async def test_probes_leave_nothing_behind(daphne, layer):
    redis_server = RedisServer()
    redis_server.start()
    store = redis.Redis(port=redis_server.port)
    try:
        # No periodic position check: its backend connection, opened on its own
        # schedule, is not the probe's footprint.
        server = daphne(
            redis_url=redis_server.url, layer=layer, POSITION_CHECK_INTERVAL=0
        )
        client = await Client.open(f"{server.url}/ws/")  # a running hub, as in use
        ack = await client.request("rt.subscribe", {"group": "public.probed"})
        assert ack["type"] == "rt.ack"
        assert (await asyncio.to_thread(get, server)).status_code == 200
        after_one = footprint(store)
        for _ in range(150):  # past channels-redis's channel capacity (100)
            probe = await asyncio.to_thread(get, server)
            assert probe.status_code == 200, probe.text
        assert footprint(store) == after_one
        await client.close()
    finally:
        store.close()
        redis_server.stop()
