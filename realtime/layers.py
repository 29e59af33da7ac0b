"""The channel layer as realtime uses it: one hub channel per process, sized for bursts.

Each process's hub receives every group's events on one layer channel. channels-redis
drops a message once a channel holds ``capacity`` (100 by default) of them, which a
loop of notify() calls reaches in milliseconds; the hub's channel is therefore named
apart (``realtime-hub.*``) and given ``REALTIME["HUB_CAPACITY"]``.
"""

from __future__ import annotations

import re
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer
from redis.exceptions import RedisError

from realtime.settings import realtime_settings

HUB_CHANNEL = "realtime-hub"
_HUB_PATTERN = re.compile(re.escape(HUB_CHANNEL) + r"\.")


def get_layer() -> Any | None:
    """The configured channel layer, its hub channels sized for bursts."""
    layer = get_channel_layer(realtime_settings.CHANNEL_LAYER)
    # vars(): the pub/sub layer proxies unknown attributes to a per-loop layer.
    if layer is not None and not vars(layer).get("_realtime_sized", False):
        if isinstance(layer, RedisChannelLayer):
            capacity = int(realtime_settings.HUB_CAPACITY)
            layer.channel_capacity.insert(0, (_HUB_PATTERN, capacity))
        layer._realtime_sized = True
    return layer


def is_hub_rule(rule: tuple[Any, int]) -> bool:
    """True for the channel-capacity rule ``get_layer()`` added."""
    return rule[0] is _HUB_PATTERN


def is_process_local(layer: Any) -> bool:
    """True for layers that reach only this process (the hub dispatches directly)."""
    return isinstance(layer, InMemoryChannelLayer)


async def new_hub_channel(layer: Any) -> str:
    if isinstance(layer, RedisChannelLayer):
        return await layer.new_channel(prefix=HUB_CHANNEL)
    if isinstance(layer, RedisPubSubChannelLayer):
        return await layer.new_channel(prefix=HUB_CHANNEL + ".")
    return await layer.new_channel()


def layer_hosts(layer: Any) -> list[dict[str, Any]]:
    """The Redis servers (decoded host dicts) a channels-redis layer uses."""
    if isinstance(layer, RedisChannelLayer):
        return list(layer.hosts)
    if isinstance(layer, RedisPubSubChannelLayer):
        return [shard.host for shard in layer._shards]
    return []


def shard_of(layer: Any, group: str) -> int | None:
    """Index in ``layer_hosts()`` of the server that routes ``group``'s events."""
    if isinstance(layer, RedisChannelLayer):
        return layer.consistent_hash(group)
    if isinstance(layer, RedisPubSubChannelLayer):
        shard = layer._get_shard(layer._get_group_channel_name(group))
        return layer._shards.index(shard)
    return None


def unreachable() -> tuple[type[BaseException], ...]:
    """Errors that mean Redis or the layer could not be reached (transient)."""
    return (OSError, TimeoutError, RedisError)
