"""Redis backend: history, presence and claims shared by every process.

Each operation that must be atomic (assign seq + append, join, leave, sweep) is one
Lua script, so it costs one round trip and cannot interleave with another process.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from realtime.backends.base import BaseBackend, HistoryRead, PresenceState
from realtime.backends.connections import backend_host, connect, describe
from realtime.settings import realtime_settings

# KEYS: log, meta. ARGV: prefix, suffix, now_ms, size, ttl_s, new_epoch, meta_ttl_s.
# The log is a list of "<ms>|<frame>" kept for ttl; meta holds seq and epoch and
# outlives the log (meta_ttl), so a room that stays quiet past HISTORY_TTL goes on
# counting in the same epoch: connected sockets and returning clients keep their
# position. A fresh epoch (meta lost: Redis restarted or flushed, a failover)
# tells clients the old seqs mean nothing.
APPEND = """
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[6]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'seq', 0)
end
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
redis.call('RPUSH', KEYS[1], ARGV[3] .. '|' .. ARGV[1] .. seq .. ARGV[2])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[4]), -1)
local cutoff = tonumber(ARGV[3]) - tonumber(ARGV[5]) * 1000
for i = 1, 1000 do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head then break end
  local ts = tonumber(string.sub(head, 1, string.find(head, '|', 1, true) - 1))
  if ts >= cutoff then break end
  redis.call('LPOP', KEYS[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[7])
return {seq, epoch}
"""

# KEYS: log, meta. ARGV: since, new_epoch, ttl_s.
# Returns {seq, epoch, first_seq, frames...}. A group without a position gets one
# (seq 0, a new epoch): every ack then names the epoch its seqs belong to. It lives
# HISTORY_TTL until the group's first event (then HISTORY_EPOCH_TTL), so subscribing
# to many groups that never get an event leaves nothing for long.
SINCE = """
local meta = redis.call('HMGET', KEYS[2], 'seq', 'epoch')
if not meta[2] then
  redis.call('HSET', KEYS[2], 'epoch', ARGV[2], 'seq', 0)
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  return {0, ARGV[2], 1}
end
local seq = tonumber(meta[1])
local len = redis.call('LLEN', KEYS[1])
local first = seq - len + 1
local start = tonumber(ARGV[1]) - first + 1
if start < 0 then start = 0 end
local out = {seq, meta[2], first}
if tonumber(ARGV[1]) < seq then
  for _, item in ipairs(redis.call('LRANGE', KEYS[1], start, -1)) do
    table.insert(out, item)
  end
end
return out
"""

# KEYS: conns zset, users hash, user zset, members hash, groups zset.
# ARGV: conn_id, user_key, member_json, expires, now, group.
JOIN = """
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[6])
if ARGV[2] == '' then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('HSET', KEYS[4], ARGV[2], ARGV[3])
if redis.call('ZCARD', KEYS[3]) == 1 then return 1 end
return 0
"""

# KEYS: conns zset, users hash, members hash. ARGV: conn_id, now, user-zset prefix.
# Returns the member json if that was the user's last live connection.
LEAVE = """
local key = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if (not key) or key == '' then return false end
local uz = ARGV[3] .. key
redis.call('ZREM', uz, ARGV[1])
redis.call('ZREMRANGEBYSCORE', uz, '-inf', ARGV[2])
if redis.call('ZCARD', uz) > 0 then return false end
local member = redis.call('HGET', KEYS[3], key)
redis.call('HDEL', KEYS[3], key)
return member or '{}'
"""


class RedisBackend(BaseBackend):
    """Backend on one Redis server (REDIS_URL, or the channel layer's first host)."""

    redis: Any  # redis.asyncio.Redis; its stubs type commands as sync-or-async

    def __init__(self, host: dict[str, Any] | str | None = None) -> None:
        # Any host form channels-redis accepts (a URL, an address or host/port dict
        # with password, username or ssl_* options, a Sentinel entry), connected the
        # way channels-redis connects it: behind Sentinel, history and presence
        # follow the same master through a failover.
        if host is None:
            host = backend_host()
        elif isinstance(host, str):
            host = {"address": host}
        self.url = describe(host)  # without credentials: status() shows it
        self.redis = connect(host)
        self.prefix = realtime_settings.KEY_PREFIX
        self._append = self.redis.register_script(APPEND)
        self._since = self.redis.register_script(SINCE)
        self._join = self.redis.register_script(JOIN)
        self._leave = self.redis.register_script(LEAVE)

    def _keys(self, kind: str, group: str) -> str:
        # The hash tag keeps one group's keys in one Redis Cluster slot.
        return f"{self.prefix}:{kind}:{{{group}}}"

    async def append(self, group: str, prefix: str, suffix: str) -> tuple[int, str]:
        seq, epoch = await self._append(
            keys=[self._keys("log", group), self._keys("meta", group)],
            args=[
                prefix,
                suffix,
                int(time.time() * 1000),
                realtime_settings.HISTORY_SIZE,
                realtime_settings.HISTORY_TTL,
                uuid.uuid4().hex[:12],
                epoch_ttl(),
            ],
        )
        return int(seq), epoch.decode()

    async def since(self, group: str, since: int, epoch: str | None) -> HistoryRead:
        result = await self._since(
            keys=[self._keys("log", group), self._keys("meta", group)],
            args=[since, uuid.uuid4().hex[:12], realtime_settings.HISTORY_TTL],
        )
        seq, current, first = int(result[0]), result[1], int(result[2])
        if not current:
            return HistoryRead(seq=0, epoch=None, recovered=since == 0)
        current = current.decode()
        frames = []
        for item in result[3:]:
            text = item.decode()
            body = text[text.index("|") + 1 :]
            frames.append((0, body))
        # Seqs are consecutive in the log, so they follow from the first one read.
        start = max(first, since + 1)
        frames = [(start + index, body) for index, (_, body) in enumerate(frames)]
        recovered = epoch in (None, current) and since <= seq and first <= since + 1
        return HistoryRead(
            frames=frames if recovered else [],
            seq=seq,
            epoch=current,
            recovered=recovered,
        )

    async def position(self, group: str) -> tuple[int, str | None]:
        read = await self.since(group, 2**53, None)  # creates a missing position
        return read.seq, read.epoch

    async def positions(self, groups: list[str]) -> list[tuple[int, str | None]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for group in groups:
                pipe.hmget(self._keys("meta", group), "seq", "epoch")
            replies = await pipe.execute()
        return [
            (0, None) if epoch is None else (int(seq), epoch.decode())
            for seq, epoch in replies
        ]

    async def claim(self, key: str, ttl: float) -> bool:
        name = f"{self.prefix}:claim:{key}"
        return bool(await self.redis.set(name, b"1", nx=True, px=int(ttl * 1000)))

    def _presence_keys(self, group: str) -> list[str]:
        return [
            self._keys("pc", group),
            self._keys("pu", group),
            self._keys("pi", group),
        ]

    async def presence_join(
        self, group: str, conn_id: str, user_key: str, member: dict | None, ttl: float
    ) -> bool:
        now = time.time()
        conns, users, members = self._presence_keys(group)
        first = await self._join(
            keys=[
                conns,
                users,
                f"{self._keys('pz', group)}:{user_key}",
                members,
                f"{self.prefix}:pgroups",
            ],
            args=[conn_id, user_key, orjson.dumps(member or {}), now + ttl, now, group],
        )
        return bool(first)

    async def presence_leave(self, group: str, conn_id: str) -> dict | None:
        member = await self._leave(
            keys=self._presence_keys(group),
            args=[conn_id, time.time(), f"{self._keys('pz', group)}:"],
        )
        return orjson.loads(member) if member else None

    async def presence_refresh(
        self, entries: list[tuple[str, str]], ttl: float
    ) -> None:
        if not entries:
            return
        expires = time.time() + ttl
        users = {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for group, conn_id in entries:
                pipe.hget(self._keys("pu", group), conn_id)
            keys = await pipe.execute()
            for (group, conn_id), key in zip(entries, keys, strict=True):
                pipe.zadd(self._keys("pc", group), {conn_id: expires}, xx=True)
                pipe.zadd(f"{self.prefix}:pgroups", {group: expires}, gt=True)
                if key:
                    users[(group, conn_id)] = key.decode()
                    pz = f"{self._keys('pz', group)}:{key.decode()}"
                    pipe.zadd(pz, {conn_id: expires}, xx=True)
            await pipe.execute()

    async def presence_state(self, group: str) -> PresenceState:
        conns, users, members = self._presence_keys(group)
        live = await self.redis.zrangebyscore(conns, time.time(), "+inf")
        keys = await self.redis.hmget(users, live) if live else []
        user_keys = list(dict.fromkeys(k.decode() for k in keys if k))
        infos = await self.redis.hmget(members, user_keys) if user_keys else []
        return PresenceState(
            members=[orjson.loads(info) if info else {} for info in infos],
            anonymous=sum(1 for k in keys if not k),
            connections=len(live),
        )

    async def presence_sweep(self) -> list[tuple[str, dict]]:
        now = time.time()
        pgroups = f"{self.prefix}:pgroups"
        left = []
        for raw in await self.redis.zrange(pgroups, 0, -1):
            group = raw.decode()
            for conn_id in await self.redis.zrangebyscore(
                self._keys("pc", group), "-inf", now
            ):
                member = await self.presence_leave(group, conn_id.decode())
                if member is not None:
                    left.append((group, member))
        await self.redis.zremrangebyscore(pgroups, "-inf", now)
        return left

    async def status(self) -> dict[str, Any]:
        history = {}
        async for key in self.redis.scan_iter(match=f"{self.prefix}:log:*", count=500):
            history[key.decode().split(":", 2)[2].strip("{}")] = await self.redis.llen(
                key
            )
        presence = {}
        for raw in await self.redis.zrange(f"{self.prefix}:pgroups", 0, -1):
            group = raw.decode()
            presence[group] = await self.redis.zcount(
                self._keys("pc", group), time.time(), "+inf"
            )
        return {
            "backend": "redis",
            "url": self.url,
            "history": history,
            "presence": presence,
        }

    async def register_process(
        self, process_id: str, info: dict[str, Any], ttl: float
    ) -> None:
        name = f"{self.prefix}:proc:{process_id}"
        await self.redis.set(name, orjson.dumps(info), px=int(ttl * 1000))

    async def unregister_process(self, process_id: str) -> None:
        await self.redis.delete(f"{self.prefix}:proc:{process_id}")

    async def processes(self) -> list[dict[str, Any]]:
        names = [
            name
            async for name in self.redis.scan_iter(
                match=f"{self.prefix}:proc:*", count=500
            )
        ]
        values = await self.redis.mget(names) if names else []
        return [orjson.loads(value) for value in values if value]

    async def close(self) -> None:
        await self.redis.aclose()


def epoch_ttl() -> int:
    """Seconds a group's (epoch, seq) outlives its last event: at least HISTORY_TTL."""
    return max(
        int(realtime_settings.HISTORY_EPOCH_TTL), int(realtime_settings.HISTORY_TTL)
    )
