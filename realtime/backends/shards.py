"""Which Redis server holds a group's state: the one the channel layer uses for it.

channels-redis spreads groups over its ``hosts`` by consistent hashing (a CRC of a
name, mapped onto the ring of hosts): the core layer hashes the group's name, the
pub/sub layer the group's channel (``<prefix>__group__<group>``). History and
presence follow the same hash, so a group's events, log and members share one
server and adding hosts scales all three. With ``REALTIME["REDIS_URL"]`` every
group's state lives on that one server instead.

Keys that belong to no group are placed deliberately: a single-use claim (a
ticket) on the shard its key hashes to; process records on every shard.
"""

from __future__ import annotations

from typing import Any

from channels_redis.utils import _consistent_hash

from realtime.backends.connections import layer_hosts_setting
from realtime.settings import channel_layer_config, realtime_settings


class Ring:
    """The state servers and the hash that picks one for a group or a key."""

    def __init__(self, hosts: list[dict[str, Any]], *, group_prefix: str = "") -> None:
        self.hosts = hosts
        self.size = len(hosts)
        # The pub/sub layer hashes the group's channel name, not the group.
        self.group_prefix = group_prefix

    def of_group(self, group: str) -> int:
        """Index of the server that holds ``group``'s history and presence."""
        return _consistent_hash(self.group_prefix + group, self.size)

    def of_key(self, key: str) -> int:
        """Index of the server that holds a key of no group (a claim)."""
        return _consistent_hash(key, self.size)


def state_ring() -> Ring:
    """The ring the Redis backend uses under the current settings."""
    if realtime_settings.REDIS_URL:
        return Ring([{"address": realtime_settings.REDIS_URL}])
    return Ring(layer_hosts_setting(), group_prefix=layer_group_prefix())


def layer_group_prefix() -> str:
    """What channels-redis puts before a group's name when it picks its shard."""
    layer = channel_layer_config()
    if "pubsub" in layer.get("BACKEND", "").lower():
        return f"{layer.get('CONFIG', {}).get('prefix', 'asgi')}__group__"
    return ""
