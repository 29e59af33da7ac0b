"""realtime.broker on a real redis-server: the Redis script and the layer broker keep
one history per group, number each event once, and send the frame history holds."""

from __future__ import annotations

import asyncio
import threading

import pytest
from channels.layers import channel_layers

from realtime import backends
from realtime.backends import get_backend
from realtime.broker import LayerBroker, ScriptBroker, get_broker
from realtime.frames import EventFrame
from realtime.layers import get_layer
from realtime.live import Event

GROUP = "room.redis"
LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}


@pytest.fixture(params=sorted(LAYERS))
def redis(request, redis_layer, settings):
    """channels-redis (core, then pub/sub) and the Redis backend on one server."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": LAYERS[request.param],
            "CONFIG": {"hosts": [redis_layer]},
        }
    }
    channel_layers.backends = {}
    backends.reset()
    return request.param


async def listening() -> tuple[object, str]:
    layer = get_layer()
    channel = await layer.new_channel()
    await layer.group_add(GROUP, channel)
    return layer, channel


async def received(layer, channel: str, count: int) -> list[dict]:
    async with asyncio.timeout(10):
        return [await layer.receive(channel) for _ in range(count)]


def frame(n: int) -> EventFrame:
    return EventFrame(GROUP, "test.note", {"text": f"e{n}"}, 1)


async def test_the_script_is_chosen_unless_a_connection_is_left_out(redis):
    assert isinstance(get_broker(history=True), ScriptBroker)
    assert isinstance(get_broker(history=False), ScriptBroker)
    assert isinstance(get_broker(history=False, exclude=True), LayerBroker)
    with pytest.raises(ValueError, match="leave a connection out"):
        await get_broker(history=False).publish(frame(0), history=False, exclude="c1")


async def test_script_and_layer_brokers_number_one_history(redis):
    layer, channel = await listening()
    script, by_layer = get_broker(history=True), LayerBroker(layer)
    assert isinstance(script, ScriptBroker)
    seqs = []
    for n in range(6):
        if n % 3 == 0:
            seqs.append(await script.publish(frame(n), history=True))
        elif n % 3 == 1:
            seqs.append(await by_layer.publish(frame(n), history=True))
        else:  # from sync code, as a view calls it
            seqs.append(
                await asyncio.to_thread(script.publish_sync, frame(n), history=True)
            )
    assert seqs == [1, 2, 3, 4, 5, 6]
    messages = await received(layer, channel, 6)
    events = [Event(message) for message in messages]
    assert [e.seq for e in events] == seqs
    # Each implementation sends the frame the one builder made, byte for byte.
    assert [e.text for e in events] == [frame(n).text(n + 1) for n in range(6)]
    epochs = {e.epoch for e in events}
    seq, epoch = await get_backend().position(GROUP)
    assert epochs == {epoch} and seq == 6
    read = await get_backend().since(GROUP, 0, epoch)
    assert read.recovered
    assert read.frames == [(e.seq, e.text) for e in events]
    # And the same rt.event message, whichever broker sent it.
    fields = ("type", "group", "event", "v")
    assert len({tuple(m[k] for k in fields) for m in messages}) == 1


async def test_without_history_the_script_and_layer_send_the_same_message(redis):
    layer, channel = await listening()
    await get_broker(history=False).publish(frame(0), history=False)
    await LayerBroker(layer).publish(frame(0), history=False, exclude="conn-1")
    by_script, by_layer = await received(layer, channel, 2)
    assert by_layer.pop("exclude") == "conn-1"
    for message in (by_script, by_layer):
        message.pop("__asgi_channel__", None)
    assert by_script == by_layer == frame(0).message(None)
    assert await get_backend().positions([GROUP]) == [(0, None)]


async def test_concurrent_sync_publishes_are_numbered_once_and_stored(redis):
    layer, channel = await listening()
    script = get_broker(history=True)
    seqs: list[int | None] = []
    lock = threading.Lock()

    def publish(worker: int) -> None:
        for i in range(25):
            seq = script.publish_sync(frame(worker * 100 + i), history=True)
            with lock:
                seqs.append(seq)

    await asyncio.gather(*(asyncio.to_thread(publish, w) for w in range(4)))
    assert sorted(seqs) == list(range(1, 101))  # type: ignore[type-var]
    events = [Event(m) for m in await received(layer, channel, 100)]
    read = await get_backend().since(GROUP, 0, events[0].epoch)
    # Every seq sent is in history with the very text that was sent.
    assert dict(read.frames) == {e.seq: e.text for e in events}
    assert len(read.frames) == 100
