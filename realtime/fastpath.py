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
(one pool per host), where the Redis backend keeps the group's history too. It takes
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
import re
import select
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
from realtime.backends.scripts import APPEND
from realtime.backends.shards import Ring, state_ring
from realtime.layers import HUB_CHANNEL, get_layer, is_hub_rule
from realtime.settings import realtime_settings

logger = logging.getLogger(__name__)

CLIENT_NAME = "realtime-notify"
# Calls per pipelined round trip in send_many(): large enough that a loop of
# notify() calls pays a few round trips, small enough to bound the memory of one.
PIPELINE = 500

# KEYS: history log, history meta, group key (core) or group channel (pubsub),
# the server's reign marker (see backends.scripts). ARGV: 1 frame prefix ('' without
# history), 2 frame suffix, 3 text (without history), 4 msgpack head up to the "seq"
# key, 5 random prefix, 6 now (seconds), 7 HISTORY_SIZE, 8 HISTORY_TTL, 9 a new
# epoch, 10 the epoch's TTL, 11 this server's index in the layer's hosts. Per-layer
# constants are baked in.
_HEAD = """
local now = tonumber(ARGV[6])
local seq, text, packed_seq, epoch = false, ARGV[3], cmsgpack.pack(nil), nil
if ARGV[1] ~= '' then
  local appended = append({KEYS[1], KEYS[2], KEYS[4]}, {ARGV[1], ARGV[2],
    string.format('%d', math.floor(now * 1000)), ARGV[7], ARGV[8], ARGV[9], ARGV[10]})
  seq = appended[1]
  epoch = appended[2]
  text = ARGV[1] .. seq .. ARGV[2]
  packed_seq = cmsgpack.pack(seq)
end
local body = ARGV[4] .. packed_seq .. EPOCH_KEY .. cmsgpack.pack(epoch)
  .. TEXT_KEY .. cmsgpack.pack(text)
"""

# channels_redis.core.RedisChannelLayer.group_send, in one script: channels that
# share a process ("prefix!") share one key and one message listing them all.
# With several hosts a channel's key lives on the host its name hashes to (the
# layer's own CRC, in shard_of): messages for keys of other hosts are returned,
# {host, key, message, capacity} each, for deliver() there. ARGV[11]: this host.
_CORE = """
redis.call('ZREMRANGEBYSCORE', KEYS[3], 0, math.floor(now) - GROUP_EXPIRY)
local order, members, homes = {}, {}, {}
for _, name in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  local bang = string.find(name, '!', 1, true)
  local home = bang and string.sub(name, 1, bang) or name
  local key = LAYER_PREFIX .. home
  if not members[key] then
    members[key] = {}
    homes[key] = shard_of(home)
    order[#order + 1] = key
  end
  table.insert(members[key], name)
end
local over, out = 0, {seq, 0}
local here = tonumber(ARGV[11])
for _, key in ipairs(order) do
  -- Hubs' channels (one per process, for all its groups) take bursts.
  local capacity = CAPACITY
  if string.sub(key, 1, #HUB_KEY) == HUB_KEY then capacity = HUB_CAPACITY end
  local message = ARGV[5] .. body .. CHANNEL_KEY .. cmsgpack.pack(members[key])
  if homes[key] ~= here then
    table.insert(out, homes[key])
    table.insert(out, key)
    table.insert(out, message)
    table.insert(out, capacity)
  else
    redis.call('ZREMRANGEBYSCORE', key, 0, math.floor(now) - EXPIRY)
    if redis.call('ZCOUNT', key, '-inf', '+inf') < capacity then
      redis.call('ZADD', key, ARGV[6], message)
      redis.call('EXPIRE', key, EXPIRY)
    else
      over = over + 1
    end
  end
end
out[2] = over
return out
"""

# channels_redis.core's _map_channel_keys_to_connection: the host of a channel.
_SHARD_OF = """
local function shard_of(name)
  local crc = 0xFFFFFFFF
  for i = 1, #name do
    local index = bit.band(bit.bxor(crc, string.byte(name, i)), 0xFF)
    crc = bit.bxor(bit.rshift(crc, 8), CRC32[index + 1])
  end
  return math.floor(bit.band(bit.bnot(crc), 0xFFF) / (4096 / RING))
end
"""

# The messages _CORE left for another host's channel keys: channels-redis's own
# group-send script there, with its expiry trim. KEYS: channel keys. ARGV: the
# messages, their capacities, now, the layer's expiry.
DELIVER = """
local n, over = #KEYS, 0
local now, expiry = ARGV[2 * n + 1], tonumber(ARGV[2 * n + 2])
for i = 1, n do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, math.floor(tonumber(now)) - expiry)
  if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[n + i]) then
    redis.call('ZADD', KEYS[i], now, ARGV[i])
    redis.call('EXPIRE', KEYS[i], expiry)
  else
    over = over + 1
  end
end
return {false, over}
"""
_DELIVER_SHA = hashlib.sha1(DELIVER.encode()).hexdigest().encode()


def _crc32_table() -> str:
    rows = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xEDB88320 if crc & 1 else crc >> 1
        rows.append(str(crc))
    return "{" + ",".join(rows) + "}"


_PUBSUB = """
redis.call('PUBLISH', KEYS[3], body)
return {seq, 0}
"""


def _lua_string(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return "'" + "".join(f"\\{byte}" for byte in raw) + "'"


def _script(kind: str, constants: dict[str, Any]) -> str:
    # The Redis backend's own APPEND, as a local function whose parameters shadow
    # KEYS and ARGV, so history is defined in one place only.
    lines = [f"local function append(KEYS, ARGV)\n{APPEND}\nend"]
    for name, value in constants.items():
        literal = value if isinstance(value, int) else _lua_string(value)
        lines.append(f"local {name} = {literal}")
    if kind == "core" and constants["RING"] > 1:
        lines.append(f"local CRC32 = {_crc32_table()}")
        lines.append(_SHARD_OF)
    elif kind == "core":  # one host: every channel is on it
        lines.append("local function shard_of(name) return 0 end")
    return "\n".join(lines) + _HEAD + (_CORE if kind == "core" else _PUBSUB)


def _pack_key(key: str) -> bytes:
    return msgpack.packb(key)


def _pool(host: dict, timeout: float) -> redis.ConnectionPool | None:
    options = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "client_name": CLIENT_NAME,  # tells these apart in CLIENT LIST
        **{k: v for k, v in host.items() if k != "address"},
    }
    if "master_name" in host or "sentinels" in host:
        return None  # Sentinel: left to the layer's own async client.
    if "address" in host:
        return redis.ConnectionPool.from_url(host["address"], **options)
    return redis.ConnectionPool(**options)


# The script's reply, {seq or nil, over}, or an error line. Anything else is a
# protocol error (the connection is then dropped). With several hosts the core
# layer's reply goes on with the messages for other hosts (_flat reads those).
_REPLY = re.compile(rb"\*2\r\n(?::(-?\d+)|\$-1)\r\n:(-?\d+)\r\n")
_ERROR = re.compile(rb"-([^\r]*)\r\n")


def _flat(data: bytes) -> list | None:
    """A flat RESP array of integers, nils and strings; None while incomplete."""
    end = data.find(b"\r\n")
    count, at = int(data[1:end]), end + 2
    items: list[Any] = []
    for _ in range(count):
        end = data.find(b"\r\n", at)
        if end < 0:
            return None
        kind, value = data[at : at + 1], int(data[at + 1 : end])
        if kind == b":":
            items.append(value)
            at = end + 2
        elif kind == b"$" and value < 0:
            items.append(None)
            at = end + 2
        elif kind == b"$":
            if len(data) < end + 4 + value:
                return None
            items.append(data[end + 2 : end + 2 + value])
            at = end + 4 + value
        else:
            raise redis.exceptions.InvalidResponse(f"unexpected {data[:80]!r}")
    if at != len(data):
        raise redis.exceptions.InvalidResponse(f"unexpected {data[:80]!r}")
    return items


def _exchange(conn: Any, packed: bytes) -> list:
    """Send one packed command on ``conn`` and read the script's reply.

    redis-py connects (and performs auth, TLS, SELECT); the exchange itself is done
    on its socket here, which costs a fraction of redis-py's reply parser. Raises
    ConnectionError only when no byte of a reply came back (the caller may retry),
    InvalidResponse when the reply was cut or not the script's.
    """
    if conn._sock is None:
        conn.connect()
    sock, data = conn._sock, b""
    try:
        sock.sendall(packed)
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionResetError("connection closed by the server")
            data += chunk
            if data.endswith(b"\r\n"):
                if reply := _REPLY.fullmatch(data):
                    seq, over = reply.groups()
                    return [None if seq is None else int(seq), int(over)]
                if error := _ERROR.fullmatch(data):
                    message = error.group(1).decode(errors="replace")
                    if message.startswith("NOSCRIPT"):
                        raise redis.exceptions.NoScriptError(message)
                    raise redis.exceptions.ResponseError(message)
                if not data.startswith(b"*"):  # a whole reply, but not the script's
                    raise redis.exceptions.InvalidResponse(f"unexpected {data[:80]!r}")
                if not data.startswith(b"*2\r\n") and (items := _flat(data)):
                    return items
            if len(data) > 4096 and data.startswith(b"*2\r\n"):
                raise redis.exceptions.InvalidResponse(f"unexpected {data[:80]!r}")
    except TimeoutError as exc:  # socket.timeout: the script may have run
        raise redis.exceptions.TimeoutError("no reply from Redis in time") from exc
    except OSError as exc:
        if data:
            raise redis.exceptions.InvalidResponse(f"reply cut: {exc}") from exc
        raise redis.exceptions.ConnectionError(f"Redis connection: {exc}") from exc


def _read_replies(sock: Any, count: int, replies: list[Any]) -> None:
    """Read ``count`` pipelined script replies from ``sock`` into ``replies``: each
    ``[seq, over]``, or the ResponseError Redis answered for that command.

    Raises like ``_exchange``; ``replies`` then holds those read before.
    """
    data, pos, got = b"", 0, False
    try:
        while len(replies) < count:
            if reply := _REPLY.match(data, pos):
                seq, over = reply.groups()
                replies.append([None if seq is None else int(seq), int(over)])
                pos = reply.end()
                continue
            if error := _ERROR.match(data, pos):
                message = error.group(1).decode(errors="replace")
                replies.append(redis.exceptions.ResponseError(message))
                pos = error.end()
                continue
            rest = data[pos:]
            if rest[:1] not in (b"", b"*", b"-") or len(rest) > 4096:
                raise redis.exceptions.InvalidResponse(f"unexpected {rest[:80]!r}")
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("connection closed by the server")
            data, pos, got = rest + chunk, 0, True
    except TimeoutError as exc:
        raise redis.exceptions.TimeoutError("no reply from Redis in time") from exc
    except OSError as exc:
        if got:
            raise redis.exceptions.InvalidResponse(f"reply cut: {exc}") from exc
        raise redis.exceptions.ConnectionError(f"Redis connection: {exc}") from exc


def _open(sock: Any) -> bool:
    """True if an idle socket is still open: readable means closed by the server
    (or bytes nobody asked for)."""
    try:
        if hasattr(select, "poll"):  # no limit on descriptor numbers, unlike select
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return not poller.poll(0)
        return not select.select([sock], [], [], 0)[0]
    except (OSError, ValueError):
        return False


def _pack(args: list[bytes]) -> bytes:
    """One command in RESP, the Redis wire format."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts += (b"$%d\r\n" % len(arg), arg, b"\r\n")
    return b"".join(parts)


def _server(pool: Any) -> tuple:
    kw = pool.connection_kwargs
    return (kw.get("host"), kw.get("port"), kw.get("path"), kw.get("db", 0))


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
        pools = [_pool(host, realtime_settings.NOTIFY_TIMEOUT / 2) for host in hosts]
        if any(pool is None for pool in pools):
            raise LookupError("sentinel hosts")
        self.pools: list[Any] = pools
        self.servers = [_server(pool) for pool in pools]
        # Per host, connections not in use, each of which has answered before.
        # deque's append and pop are atomic: no lock, and a connection outlives the
        # thread (or greenlet) that opened it, so a thread per request still
        # reuses them.
        self.idle: list[deque[Any]] = [deque() for _ in pools]
        self.reign_key = f"{realtime_settings.KEY_PREFIX}:reign".encode()
        constants: dict[str, Any] = {
            "TEXT_KEY": _pack_key("text"),
            "EPOCH_KEY": _pack_key("epoch"),
        }
        if kind == "core":
            constants.update(
                HUB_KEY=f"{layer.prefix}{HUB_CHANNEL}.",
                HUB_CAPACITY=int(realtime_settings.HUB_CAPACITY),
                LAYER_PREFIX=layer.prefix,
                GROUP_EXPIRY=int(layer.group_expiry),
                EXPIRY=int(layer.expiry),
                CAPACITY=int(layer.capacity),
                CHANNEL_KEY=_pack_key("__asgi_channel__"),
                RING=len(hosts),
            )
            self.random_bytes = layer._serializer.random_prefix_length
        else:
            self.random_bytes = 0
        self.script = _script(kind, constants).encode()
        self.sha = hashlib.sha1(self.script).hexdigest().encode()
        # The message is a msgpack map; the script appends "seq", "epoch", "text"
        # (and the channel list) to this head, so the count includes them.
        self.head = bytes([0x80 | (8 if kind == "core" else 7)]) + b"".join(
            (_pack_key("type"), msgpack.packb("rt.event"))
        )
        self.keys = {name: _pack_key(name) for name in ("group", "event", "v", "seq")}
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
                and [_server(create_pool(host)) for host in ring.hosts] == self.servers
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
        for shard, command in self._deliveries(others, args[9]):
            over += self._evalsha(shard, _DELIVER_SHA, DELIVER.encode(), command)[1]
        return self._sent(group, seq, over)

    def send_many(self, calls: list[dict[str, Any]]) -> list[Any]:
        """``send()`` each call (its keyword arguments) in order, pipelined: one
        round trip per ``PIPELINE`` calls. Returns, per call, its seq or the
        exception that says why it was not sent (or may not have been).

        With several shards the calls go one by one (a core layer's event may need
        a second script on another shard), in order, with the same reporting."""
        if len(self.pools) > 1:
            return self._send_each(calls)
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

    def _send_each(self, calls: list[dict[str, Any]]) -> list[Any]:
        results: list[Any] = []
        failed: Exception | None = None
        for call in calls:
            if failed is not None:
                results.append(failed)
                continue
            try:
                seq = self.send(
                    call["group"],
                    call["type"],
                    call["v"],
                    prefix=call["prefix"],
                    suffix=call["suffix"],
                    text=call["text"],
                )
            except redis.exceptions.ResponseError as error:
                results.append(error)  # Redis refused this call alone
            except (redis.exceptions.RedisError, OSError) as error:
                # It may still run on Redis: nothing after it is sent.
                results.append(error)
                failed = redis.exceptions.ConnectionError(
                    f"not sent after an earlier part of the batch failed ({error})"
                )
            else:
                results.append(seq)
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
            _pack([b"EVAL", self.script, b"4", *args])
            if index == 0
            else _pack([b"EVALSHA", self.sha, b"4", *args])
            for index, args in enumerate(commands)
        )
        idle, pool = self.idle[0], self.pools[0]  # one shard (see send_many)
        try:
            conn = idle.pop()
        except IndexError:
            conn = pool.connection_class(**pool.connection_kwargs)
        if conn._sock is not None and not _open(conn._sock):
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
            _read_replies(conn._sock, len(commands), replies)
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
            seq, over, *others = await client.evalsha(self.sha.decode(), 4, *args)
        except redis.exceptions.NoScriptError:
            seq, over, *others = await client.eval(self.script.decode(), 4, *args)
        for shard, command in self._deliveries(others, args[9]):
            client = self._async_client(shard)
            try:
                over += (await client.evalsha(_DELIVER_SHA.decode(), *command))[1]
            except redis.exceptions.NoScriptError:
                over += (await client.eval(DELIVER, *command))[1]
        return self._sent(group, seq, over)

    def _deliveries(self, others: list, now: bytes) -> list[tuple[int, list[bytes]]]:
        """The DELIVER commands (numkeys, keys, args) for messages _CORE returned
        for channel keys on other hosts, one per host."""
        if not others:
            return []
        hosts: dict[int, list[tuple[bytes, bytes, int]]] = {}
        for at in range(0, len(others), 4):
            shard, key, message, capacity = others[at : at + 4]
            hosts.setdefault(int(shard), []).append((key, message, int(capacity)))
        expiry = b"%d" % int(self.layer.expiry)
        return [
            (
                shard,
                [
                    b"%d" % len(entries),
                    *(key for key, _, _ in entries),
                    *(message for _, message, _ in entries),
                    *(b"%d" % capacity for _, _, capacity in entries),
                    now,
                    expiry,
                ],
            )
            for shard, entries in hosts.items()
        ]

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
        packed = _pack(command)
        idle, pool = self.idle[shard], self.pools[shard]
        try:
            conn, proven = idle.pop(), True
        except IndexError:
            conn = pool.connection_class(**pool.connection_kwargs)
            proven = False
        try:
            try:
                reply = _exchange(conn, packed)
            except redis.exceptions.ConnectionError:
                # A socket from before a Redis restart fails once, before the server
                # ran anything: one retry on a fresh connection. Not after a
                # timeout, where the script may have run, nor when connecting failed.
                if not proven:
                    raise
                conn.disconnect()
                reply = _exchange(conn, packed)
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
