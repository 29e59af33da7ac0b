"""One Redis round trip per notify() from sync code, on channels-redis.

Going through an event loop, a sync ``notify()`` pays a thread hop plus four or five
Redis round trips (the history append, then channels-redis's ``group_send``). Here
both run as one Lua script, the command packed by hand, on a connection taken from a
lock-free stack of idle ones (as many as there were concurrent callers): redis-py
connects (auth, TLS, database), but its pool, command packing and client layers cost
more than the round trip itself. The script writes
exactly what the layer itself would (same keys, msgpack message, random prefix,
capacity and expiry rules), so receivers cannot tell the difference. With several
hosts it sends to the group's shard, the server channels-redis hashes the group to
(one pool per host), where the Redis backend keeps the group's history too; messages
for channels kept on other hosts follow in one more script per such host
(``crossshard``). It takes
over only when it can do all that: hosts without Sentinel, msgpack without
encryption, no per-channel capacities, and (for history) the Redis backend on the
layer's own servers. Otherwise ``fast_path()`` returns None and notify() takes the
event-loop path.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from typing import Any

import msgpack
import redis
import redis.asyncio
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer
from channels_redis.utils import create_pool, decode_hosts
from django.core.signals import setting_changed

from realtime import metrics
from realtime.backends import backend_class
from realtime.backends.redis import RedisBackend, epoch_ttl
from realtime.backends.shards import Ring, state_ring
from realtime.fastpath.crossshard import adeliver, deliver, send_each
from realtime.fastpath.resp import (
    connection_pool,
    exchange,
    is_open,
    pack,
    read_replies,
    server_of,
)
from realtime.fastpath.scripts import pack_key, script_for
from realtime.layers import HUB_CHANNEL, get_layer, is_hub_rule
from realtime.settings import realtime_settings

logger = logging.getLogger(__name__)

# Calls per pipelined round trip in send_many(): large enough that a loop of
# notify() calls pays a few round trips, small enough to bound the memory of one.
PIPELINE = 500


class FastPath:
    """Publishes to one channels-redis layer (core or pubsub) in one round trip."""

    def __init__(self, layer: Any, kind: str, hosts: list[dict], prefix: str) -> None:
        self.layer, self.kind, self.prefix, self.hosts = layer, kind, prefix, hosts
        self._clients: weakref.WeakKeyDictionary[Any, list] = (
            weakref.WeakKeyDictionary()
        )
        # The layer's own shard choice: the core layer hashes the group, pub/sub
        # the group's channel name.
        group_prefix = f"{prefix}__group__" if kind == "pubsub" else ""
        self.ring = Ring(hosts, group_prefix=group_prefix)
        # Connect and reply timeouts of half NOTIFY_TIMEOUT each, with one retry on
        # a fresh connection (see _roundtrip), keep one notify() near
        # NOTIFY_TIMEOUT at worst.
        pools = [
            connection_pool(host, realtime_settings.NOTIFY_TIMEOUT / 2)
            for host in hosts
        ]
        if any(pool is None for pool in pools):
            raise LookupError("sentinel hosts")
        self.pools: list[Any] = pools
        self.servers = [server_of(pool) for pool in pools]
        # Per host, connections not in use, each of which has answered before.
        # deque's append and pop are atomic: no lock, and a connection outlives the
        # thread (or greenlet) that opened it, so a thread per request still
        # reuses them.
        self.idle: list[deque[Any]] = [deque() for _ in pools]
        self.reign_key = f"{realtime_settings.KEY_PREFIX}:reign".encode()
        constants: dict[str, Any] = {
            "TEXT_KEY": pack_key("text"),
            "EPOCH_KEY": pack_key("epoch"),
        }
        if kind == "core":
            constants.update(
                HUB_KEY=f"{layer.prefix}{HUB_CHANNEL}.",
                HUB_CAPACITY=int(realtime_settings.HUB_CAPACITY),
                LAYER_PREFIX=layer.prefix,
                GROUP_EXPIRY=int(layer.group_expiry),
                EXPIRY=int(layer.expiry),
                CAPACITY=int(layer.capacity),
                CHANNEL_KEY=pack_key("__asgi_channel__"),
                RING=len(hosts),
            )
            self.random_bytes = layer._serializer.random_prefix_length
        else:
            self.random_bytes = 0
        self.script = script_for(kind, constants).encode()
        self.sha = hashlib.sha1(self.script).hexdigest().encode()
        self.sha_text = self.sha.decode()  # redis-py's evalsha takes text
        # The message is a msgpack map; the script appends "seq", "epoch", "text"
        # (and the channel list) to this head, so the count includes them.
        self.head = bytes([0x80 | (8 if kind == "core" else 7)]) + b"".join(
            (pack_key("type"), msgpack.packb("rt.event"))
        )
        self.keys = {name: pack_key(name) for name in ("group", "event", "v", "seq")}
        self._history_ok: bool | None = None  # settled on first use
        # Settings changes replace the whole FastPath (see _forget).
        self._fixed: dict[tuple[str, str, int | None], tuple[Any, ...]] = {}

    def serves_history(self) -> bool:
        """True if the Redis backend keeps each group's history on the server the
        layer sends the group's events through."""
        if self._history_ok is None:
            ring = state_ring() if backend_class() is RedisBackend else None
            # None: another backend; and history behind Sentinel: the event-loop
            # path handles those.
            self._history_ok = (
                ring is not None
                and not any("master_name" in host for host in ring.hosts)
                # one server: every group is on it, whatever the hash
                and (
                    len(ring.hosts) == 1 or ring.group_prefix == self.ring.group_prefix
                )
                and [server_of(create_pool(host)) for host in ring.hosts]
                == self.servers
            )
        return self._history_ok

    def send(
        self,
        group: str,
        type: str,
        v: int | None,
        *,
        prefix: str | None = None,
        suffix: str | None = None,
        text: str | None = None,
    ) -> int | None:
        """Append to history (when ``prefix`` is given) and send; return the seq."""
        args = self._arguments(group, type, v, prefix, suffix, text)
        seq, over, *others = self._call(self._fixed[group, type, v][-1], args)
        if others:  # several hosts only
            over += deliver(self._evalsha, others, args[9], self.layer.expiry)
        return self._sent(group, seq, over)

    def send_many(self, calls: list[dict[str, Any]]) -> list[Any]:
        """``send()`` each call (its keyword arguments) in order, pipelined: one
        round trip per ``PIPELINE`` calls. Returns, per call, its seq or the
        exception that says why it was not sent (or may not have been).

        With several shards the calls go one by one (a core layer's event may need
        a second script on another shard), in order, with the same reporting."""
        if len(self.pools) > 1:
            return send_each(self.send, calls)
        results: list[Any] = []
        failed: Exception | None = None
        for start in range(0, len(calls), PIPELINE):
            chunk = calls[start : start + PIPELINE]
            if failed is not None:
                # What was sent before may still run on Redis after this: sending
                # more could overtake it, so the rest of the batch is not sent.
                results += [failed] * len(chunk)
                continue
            replies, error = self._pipeline(
                [
                    self._arguments(
                        c["group"],
                        c["type"],
                        c["v"],
                        c["prefix"],
                        c["suffix"],
                        c["text"],
                    )
                    for c in chunk
                ]
            )
            for call, reply in zip(chunk, replies, strict=False):
                if isinstance(reply, Exception):
                    results.append(reply)  # Redis refused this call alone
                else:
                    results.append(self._sent(call["group"], reply[0], reply[1]))
            if error is not None:
                # Calls without a reply may or may not have run: none is resent.
                results += [error] * (len(chunk) - len(replies))
                failed = redis.exceptions.ConnectionError(
                    f"not sent after an earlier part of the batch failed ({error})"
                )
        return results

    def _pipeline(
        self, commands: list[list[bytes]]
    ) -> tuple[list[Any], Exception | None]:
        """Run the script once per argument list, in order, in one round trip.
        Returns the replies read, and the error that stopped reading, if any.

        The first command carries the script itself (EVAL), so Redis knows it for
        the EVALSHAs behind it.
        """
        packed = b"".join(
            pack([b"EVAL", self.script, b"4", *args])
            if index == 0
            else pack([b"EVALSHA", self.sha, b"4", *args])
            for index, args in enumerate(commands)
        )
        idle, pool = self.idle[0], self.pools[0]  # one shard (see send_many)
        try:
            conn = idle.pop()
        except IndexError:
            conn = pool.connection_class(**pool.connection_kwargs)
        if conn._sock is not None and not is_open(conn._sock):
            # Closed since its last use (Redis restarted): replaced before sending,
            # because a pipeline cut after sending is never resent (some of it may
            # have run).
            conn.disconnect()
        replies: list[Any] = []
        try:
            if conn._sock is None:
                conn.connect()
            try:
                conn._sock.sendall(packed)
            except TimeoutError as exc:
                raise redis.exceptions.TimeoutError(
                    "Redis did not read in time"
                ) from exc
            except OSError as exc:
                raise redis.exceptions.ConnectionError(
                    f"Redis connection: {exc}"
                ) from exc
            read_replies(conn._sock, len(commands), replies)
        except (redis.exceptions.RedisError, OSError) as error:
            conn.disconnect()  # in an unknown state: not reused
            return replies, error
        except BaseException:
            conn.disconnect()
            raise
        idle.append(conn)
        return replies, None

    async def asend(
        self,
        group: str,
        type: str,
        v: int | None,
        *,
        prefix: str | None = None,
        suffix: str | None = None,
        text: str | None = None,
    ) -> int | None:
        """``send()`` from async code, on a connection of the running loop."""
        args = self._arguments(group, type, v, prefix, suffix, text)
        client = self._async_client(self._fixed[group, type, v][-1])
        try:
            seq, over, *others = await client.evalsha(self.sha_text, 4, *args)
        except redis.exceptions.NoScriptError:
            seq, over, *others = await client.eval(self.script.decode(), 4, *args)
        if others:  # several hosts only
            over += await adeliver(
                self._async_client, others, args[9], self.layer.expiry
            )
        return self._sent(group, seq, over)

    def _async_client(self, shard: int) -> Any:
        if self.kind == "core":
            return self.layer.connection(shard)  # the layer's own pool, this loop
        loop = asyncio.get_running_loop()
        clients = self._clients.get(loop)
        if clients is None:
            clients = self._clients[loop] = [
                redis.asyncio.Redis(connection_pool=create_pool(host))
                for host in self.hosts
            ]
        return clients[shard]

    def _arguments(
        self,
        group: str,
        type: str,
        v: int | None,
        prefix: str | None,
        suffix: str | None,
        text: str | None,
    ) -> list[bytes]:
        fixed = self._fixed.get((group, type, v))
        if fixed is None:
            fixed = self._fix(group, type, v)
        log_key, meta_key, group_key, head, size, ttl, kept, shard = fixed
        return [
            log_key,
            meta_key,
            group_key,
            self.reign_key,
            (prefix or "").encode(),
            (suffix or "").encode(),
            (text or "").encode(),
            head,
            random.getrandbits(8 * self.random_bytes).to_bytes(
                self.random_bytes, "big"
            ),
            repr(time.time()).encode(),
            size,
            ttl,
            os.urandom(6).hex().encode(),
            kept,
            b"%d" % shard,
        ]

    def _sent(self, group: str, seq: int | None, over: int) -> int | None:
        if over:
            # Processes that will not get this event live: history groups repair
            # the gap from history; either way it is counted and said.
            metrics.lost("layer_capacity", over)
            logger.warning(
                "notify(%s): %s processes' channels over capacity (HUB_CAPACITY): "
                "they miss this event live",
                group,
                over,
            )
        return None if seq is None else int(seq)

    def _fix(self, group: str, type: str, v: int | None) -> tuple[Any, ...]:
        """The arguments that depend only on (group, type, v), encoded once."""
        keys = self.keys
        head = b"".join(
            (
                self.head,
                keys["group"],
                msgpack.packb(group),
                keys["event"],
                msgpack.packb(type),
                keys["v"],
                msgpack.packb(v),
                keys["seq"],
            )
        )
        if self.kind == "core":
            group_key = self.layer._group_key(group)  # bytes
        else:
            group_key = f"{self.prefix}__group__{group}".encode()
        key_prefix = realtime_settings.KEY_PREFIX
        fixed = (
            f"{key_prefix}:log:{{{group}}}".encode(),
            f"{key_prefix}:meta:{{{group}}}".encode(),
            group_key,
            head,
            b"%d" % realtime_settings.HISTORY_SIZE,
            b"%d" % realtime_settings.HISTORY_TTL,
            b"%d" % epoch_ttl(),
            self.ring.of_group(group),  # the shard: its pool, last
        )
        if len(self._fixed) >= 4096:  # many groups (one per user): start over
            self._fixed.clear()
        self._fixed[group, type, v] = fixed
        return fixed

    def _call(self, shard: int, keys_and_args: list[bytes]) -> Any:
        """Run the script with 4 keys on ``shard``."""
        return self._evalsha(shard, self.sha, self.script, [b"4", *keys_and_args])

    def _evalsha(
        self, shard: int, sha: bytes, script: bytes, command: list[bytes]
    ) -> Any:
        """EVALSHA on ``shard``; EVAL when that server does not know the script."""
        try:
            return self._roundtrip(shard, [b"EVALSHA", sha, *command])
        except redis.exceptions.NoScriptError:
            return self._roundtrip(shard, [b"EVAL", script, *command])

    def _roundtrip(self, shard: int, command: list[bytes]) -> Any:
        packed = pack(command)
        idle, pool = self.idle[shard], self.pools[shard]
        try:
            conn, proven = idle.pop(), True
        except IndexError:
            conn = pool.connection_class(**pool.connection_kwargs)
            proven = False
        try:
            try:
                reply = exchange(conn, packed)
            except redis.exceptions.ConnectionError:
                # A socket from before a Redis restart fails once, before the server
                # ran anything: one retry on a fresh connection. Not after a
                # timeout, where the script may have run, nor when connecting failed.
                if not proven:
                    raise
                conn.disconnect()
                reply = exchange(conn, packed)
        except redis.exceptions.ResponseError:
            idle.append(conn)  # Redis answered: the connection is fine
            raise
        except BaseException:
            conn.disconnect()  # in an unknown state: not reused
            raise
        idle.append(conn)
        return reply


_current: tuple[Any, int, FastPath | None] | None = None
_lock = threading.Lock()


def _forget(**kwargs: Any) -> None:
    # The layer, backend or Redis URL may have changed (override_settings).
    global _current
    _current = None


setting_changed.connect(_forget)


def _build(layer: Any) -> FastPath | None:
    kind = {RedisChannelLayer: "core", RedisPubSubChannelLayer: "pubsub"}.get(
        type(layer)
    )
    if kind is None:
        return None
    serializer = layer._serializer
    if type(serializer).__name__ != "MsgPackSerializer" or serializer.crypter:
        return None
    if kind == "core":
        if any(not is_hub_rule(rule) for rule in layer.channel_capacity):
            return None
        hosts, prefix = list(layer.hosts), layer.prefix
    else:
        if layer._args:
            return None
        hosts = decode_hosts(layer._kwargs.get("hosts"))
        prefix = layer._kwargs.get("prefix", "asgi")
    try:
        return FastPath(layer, kind, hosts, prefix)
    except (LookupError, ValueError, TypeError) as exc:
        logger.debug("notify() fast path unavailable: %s", exc)
        return None


def fast_path(*, history: bool) -> FastPath | None:
    """The one-round-trip sender for the configured layer, or None to use a loop."""
    global _current
    layer = get_layer()
    if layer is None:
        return None
    current = _current
    if current is None or current[0] is not layer or current[1] != os.getpid():
        with _lock:
            current = _current = (layer, os.getpid(), _build(layer))
    sender = current[2]
    if sender is None or (history and not sender.serves_history()):
        return None
    return sender
