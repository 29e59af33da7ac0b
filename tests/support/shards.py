"""Several redis-servers of a test's own, and settings that shard a layer over them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from tests.support.redis_server import RedisServer

CORE = "channels_redis.core.RedisChannelLayer"
PUBSUB = "channels_redis.pubsub.RedisPubSubChannelLayer"


@contextmanager
def redis_servers(count: int) -> Iterator[list[RedisServer]]:
    """``count`` redis-servers on free ports, stopped and removed afterwards."""
    servers = [RedisServer() for _ in range(count)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()
            shutil.rmtree(server.dir, ignore_errors=True)


def sharded_layer(servers: list[RedisServer], kind: str = CORE) -> dict[str, Any]:
    """A CHANNEL_LAYERS setting whose hosts are ``servers``, in order."""
    return {
        "default": {
            "BACKEND": kind,
            "CONFIG": {"hosts": [server.url for server in servers]},
        }
    }


def keys_on(server: RedisServer, pattern: str = "rt:*") -> set[str]:
    """The keys matching ``pattern`` on ``server``."""
    client = redis.Redis.from_url(server.url)
    try:
        return {key.decode() for key in client.scan_iter(match=pattern, count=1000)}
    finally:
        client.close()


def commands_on(server: RedisServer) -> int:
    """Commands ``server`` has processed so far (INFO stats)."""
    client = redis.Redis.from_url(server.url)
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


def scripts_run(server: RedisServer) -> int:
    """EVAL and EVALSHA calls ``server`` has answered (its clients' round trips
    for scripts; the commands a script runs are counted apart)."""
    client = redis.Redis.from_url(server.url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return sum(
        stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("eval", "evalsha")
    )
