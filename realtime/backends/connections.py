"""How realtime reaches Redis: the host forms channels-redis accepts, and their faults.

A host is what channels-redis's ``decode_hosts`` makes of one ``hosts`` entry: a
dict of ``address`` (a URL) or ``host``/``port``/``db``, or ``sentinels`` and
``master_name``, plus any connection option (``password``, ``username``, ``ssl_*``).
Every client here is built by channels-redis's own ``create_pool``, so whatever form
the channel layer accepts, history, presence, the health probe and the commands
accept too. Redis Cluster is refused (docs/decisions.md): its first reply that only a
cluster gives raises ``RedisClusterUnsupported``.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

from channels_redis.utils import create_pool, decode_hosts
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import (
    AskError,
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    ClusterCrossSlotError,
    ClusterDownError,
    MovedError,
    RedisError,
    ResponseError,
)

from realtime.exceptions import RedisClusterUnsupported
from realtime.settings import channel_layer_config, realtime_settings

#: Replies only a Redis Cluster node gives to a client that is not cluster-aware.
CLUSTER_REPLIES = (MovedError, AskError, ClusterDownError, ClusterCrossSlotError)

ALTERNATIVE = (
    "Configure several standalone Redis servers as the channel layer's hosts "
    "(channels-redis shards groups across them), each made highly available with "
    "Sentinel; see docs/deploying.md."
)


def layer_hosts_setting() -> list[dict[str, Any]]:
    """The channel layer's hosts, decoded as channels-redis decodes them."""
    layer = channel_layer_config()
    return decode_hosts(layer.get("CONFIG", {}).get("hosts"))


def describe(host: dict[str, Any]) -> str:
    """``host`` in words for logs and errors, without its credentials."""
    if "master_name" in host:
        return f"sentinel:{host['master_name']}"
    if "address" in host:
        parts = urlsplit(str(host["address"]))
        netloc = parts.netloc.rpartition("@")[2]
        return parts._replace(netloc=netloc).geturl()
    scheme = "rediss" if uses_tls(host) else "redis"
    where = f"{host.get('host', 'localhost')}:{host.get('port', 6379)}"
    return f"{scheme}://{where}/{host.get('db', 0)}"


def uses_tls(host: dict[str, Any]) -> bool:
    """True if ``host`` asks for TLS (``rediss://``, ``ssl``, an SSL connection)."""
    if str(host.get("address", "")).startswith("rediss://"):
        return True
    connection_class = getattr(host.get("connection_class"), "__name__", "")
    return bool(host.get("ssl")) or "SSL" in connection_class


def connect(host: dict[str, Any]) -> Redis:
    """An asyncio client of ``host`` that refuses Redis Cluster clearly."""
    client = ClusterRefusingRedis(connection_pool=create_pool(host))
    client.where = describe(host)
    return client


def cluster_refused(where: str, error: BaseException) -> RedisClusterUnsupported:
    return RedisClusterUnsupported(
        f"{where} is a Redis Cluster node (it answered {str(error)[:80]!r}); realtime "
        f"does not support Redis Cluster. {ALTERNATIVE}"
    )


class ClusterRefusingRedis(Redis):
    """A Redis client whose cluster-only replies become RedisClusterUnsupported."""

    where = "Redis"

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)
        except CLUSTER_REPLIES as error:
            raise cluster_refused(self.where, error) from error

    def pipeline(
        self, transaction: bool = True, shard_hint: str | None = None
    ) -> Pipeline:
        pipe = ClusterRefusingPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.where = self.where
        return pipe


class ClusterRefusingPipeline(Pipeline):
    where = "Redis"

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            return await super().execute(raise_on_error)
        except CLUSTER_REPLIES as error:
            raise cluster_refused(self.where, error) from error


def configured_servers() -> list[tuple[str, dict[str, Any]]]:
    """Every Redis realtime connects to, each with the setting that names it."""
    layer = channel_layer_config()
    servers = []
    if "channels_redis" in layer.get("BACKEND", ""):
        alias = realtime_settings.CHANNEL_LAYER
        servers = [
            (f"CHANNEL_LAYERS[{alias!r}] hosts[{index}]", host)
            for index, host in enumerate(layer_hosts_setting())
        ]
    if realtime_settings.REDIS_URL:
        servers.append(
            ("REALTIME['REDIS_URL']", {"address": realtime_settings.REDIS_URL})
        )
    return servers


async def diagnose(host: dict[str, Any], *, timeout: float = 3.0) -> tuple[str, str]:
    """Connect to ``host`` once: ``("ok", "")`` or (fault, what happened).

    Faults: ``auth`` (credentials refused or missing), ``tls`` (the TLS handshake
    failed), ``cluster`` (a Redis Cluster node), ``unreachable``, ``error``.
    """
    options = {"socket_connect_timeout": timeout, "socket_timeout": timeout, **host}
    client: Any = Redis(connection_pool=create_pool(options))
    try:
        await client.ping()
        info = await client.info("cluster")
    except (AuthenticationError, AuthenticationWrongNumberOfArgsError) as error:
        return "auth", str(error)
    except ssl.SSLError as error:
        return "tls", str(error)
    except (RedisError, OSError) as error:
        text = f"{type(error).__name__}: {error}"
        if uses_tls(host) or "SSL" in text:
            return "tls", text
        if isinstance(error, ResponseError):
            return "error", text
        return "unreachable", text
    finally:
        await client.aclose()
    if int(info.get("cluster_enabled", 0)) == 1:
        return "cluster", "INFO cluster says cluster_enabled:1"
    return "ok", ""
