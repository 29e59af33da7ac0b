"""Redis backend: history, presence and claims shared by every process.

Each operation that must be atomic (assign seq + append, join, leave, claim) is one
Lua script on one server, so it costs one round trip and cannot interleave with
another process. A group's keys live on its shard (``backends.shards``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Iterable
from typing import Any

import orjson
from redis.exceptions import RedisError

from realtime.backends.base import BaseBackend, HistoryRead, PresenceState
from realtime.backends.connections import connect, describe
from realtime.backends.scripts import APPEND, CLAIM, JOIN, LEAVE, SINCE
from realtime.backends.shards import Ring, state_ring
from realtime.settings import realtime_settings

logger = logging.getLogger(__name__)
#: What a shard's outage raises (as opposed to a bug, which propagates).
UNREACHABLE = (OSError, TimeoutError, RedisError)


class RedisBackend(BaseBackend):
    """Backend on the channel layer's Redis servers (or REDIS_URL's one server).

    Each group's history and presence live on the server channels-redis routes the
    group through (``backends.shards``); claims on the server their key hashes to;
    process records on every server.
    """

    redis: Any  # the first shard's client (redis.asyncio.Redis)

    def __init__(self, host: dict[str, Any] | str | None = None) -> None:
        # Any host form channels-redis accepts (a URL, an address or host/port dict
        # with password, username or ssl_* options, a Sentinel entry), connected the
        # way channels-redis connects it: behind Sentinel, history and presence
        # follow the same master through a failover.
        if host is None:
            self.ring = state_ring()
        else:
            self.ring = Ring([{"address": host} if isinstance(host, str) else host])
        self.urls = [describe(h) for h in self.ring.hosts]  # without credentials
        self.url = self.urls[0] if len(self.urls) == 1 else ", ".join(self.urls)
        self.shards: list[Any] = [connect(h) for h in self.ring.hosts]
        self.redis = self.shards[0]
        self.prefix = realtime_settings.KEY_PREFIX
        self.reign_key = f"{self.prefix}:reign"
        # Scripts are sent by SHA to whichever shard's client is passed in.
        self._append = self.redis.register_script(APPEND)
        self._since = self.redis.register_script(SINCE)
        self._claim = self.redis.register_script(CLAIM)
        self._join = self.redis.register_script(JOIN)
        self._leave = self.redis.register_script(LEAVE)

    def shard(self, group: str) -> Any:
        """The client of the server that holds ``group``'s state."""
        return self.shards[self.ring.of_group(group)]

    def _keys(self, kind: str, group: str) -> str:
        # The hash tag keeps one group's keys in one Redis Cluster slot.
        return f"{self.prefix}:{kind}:{{{group}}}"

    def _by_shard(self, groups: list[str]) -> dict[int, list[int]]:
        """Positions in ``groups`` of each shard's groups."""
        found: dict[int, list[int]] = {}
        for index, group in enumerate(groups):
            found.setdefault(self.ring.of_group(group), []).append(index)
        return found

    async def append(self, group: str, prefix: str, suffix: str) -> tuple[int, str]:
        seq, epoch = await self._append(
            keys=[self._keys("log", group), self._keys("meta", group), self.reign_key],
            args=[
                prefix,
                suffix,
                int(time.time() * 1000),
                realtime_settings.HISTORY_SIZE,
                realtime_settings.HISTORY_TTL,
                secrets.token_hex(6),
                epoch_ttl(),
            ],
            client=self.shard(group),
        )
        return int(seq), epoch.decode()

    async def since(self, group: str, since: int, epoch: str | None) -> HistoryRead:
        result = await self._since(
            keys=[self._keys("log", group), self._keys("meta", group), self.reign_key],
            args=[
                since,
                secrets.token_hex(6),
                realtime_settings.HISTORY_TTL,
                int(time.time() * 1000),
            ],
            client=self.shard(group),
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
        found: list[tuple[int, str | None]] = [(0, None)] * len(groups)

        async def read(shard: int, indexes: list[int]) -> None:
            async with self.shards[shard].pipeline(transaction=False) as pipe:
                for index in indexes:
                    pipe.hmget(self._keys("meta", groups[index]), "seq", "epoch")
                replies = await pipe.execute()
            for index, (seq, epoch) in zip(indexes, replies, strict=True):
                if epoch is not None:
                    found[index] = (int(seq), epoch.decode())

        # One round trip per shard, all shards at once. A shard that does not
        # answer leaves its groups without a position (the hub's checks skip
        # them); only when no shard answers does the read fail.
        await _spread(
            read(shard, indexes) for shard, indexes in self._by_shard(groups).items()
        )
        return found

    async def claim(self, key: str, ttl: float, *, issued: float | None = None) -> bool:
        granted = await self._claim(
            keys=[f"{self.prefix}:claim:{key}", self.reign_key],
            args=[
                int(ttl * 1000),
                int((issued or 0) * 1000),
                secrets.token_hex(6),
                int(time.time() * 1000),
            ],
            client=self.shards[self.ring.of_key(key)],
        )
        return int(granted) == 1

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
                f"{self.prefix}:pgroups",  # per shard: the groups it holds
            ],
            args=[conn_id, user_key, orjson.dumps(member or {}), now + ttl, now, group],
            client=self.shard(group),
        )
        return bool(first)

    async def presence_leave(self, group: str, conn_id: str) -> dict | None:
        member = await self._leave(
            keys=self._presence_keys(group),
            args=[conn_id, time.time(), f"{self._keys('pz', group)}:"],
            client=self.shard(group),
        )
        return orjson.loads(member) if member else None

    async def presence_refresh(
        self, entries: list[tuple[str, str]], ttl: float
    ) -> None:
        if not entries:
            return
        expires = time.time() + ttl
        groups = [group for group, _ in entries]

        async def refresh(shard: int, indexes: list[int]) -> None:
            mine = [entries[index] for index in indexes]
            async with self.shards[shard].pipeline(transaction=False) as pipe:
                for group, conn_id in mine:
                    pipe.hget(self._keys("pu", group), conn_id)
                keys = await pipe.execute()
                for (group, conn_id), key in zip(mine, keys, strict=True):
                    pipe.zadd(self._keys("pc", group), {conn_id: expires}, xx=True)
                    pipe.zadd(f"{self.prefix}:pgroups", {group: expires}, gt=True)
                    if key:
                        pz = f"{self._keys('pz', group)}:{key.decode()}"
                        pipe.zadd(pz, {conn_id: expires}, xx=True)
                await pipe.execute()

        await _spread(
            refresh(shard, idx) for shard, idx in self._by_shard(groups).items()
        )

    async def presence_state(self, group: str) -> PresenceState:
        conns, users, members = self._presence_keys(group)
        redis = self.shard(group)
        live = await redis.zrangebyscore(conns, time.time(), "+inf")
        keys = await redis.hmget(users, live) if live else []
        user_keys = list(dict.fromkeys(k.decode() for k in keys if k))
        infos = await redis.hmget(members, user_keys) if user_keys else []
        return PresenceState(
            members=[orjson.loads(info) if info else {} for info in infos],
            anonymous=sum(1 for k in keys if not k),
            connections=len(live),
        )

    async def presence_sweep(self) -> list[tuple[str, dict]]:
        now = time.time()
        pgroups = f"{self.prefix}:pgroups"
        left: list[tuple[str, dict]] = []

        async def sweep(redis: Any) -> None:
            for raw in await redis.zrange(pgroups, 0, -1):
                group = raw.decode()
                for conn_id in await redis.zrangebyscore(
                    self._keys("pc", group), "-inf", now
                ):
                    member = await self.presence_leave(group, conn_id.decode())
                    if member is not None:
                        left.append((group, member))
            await redis.zremrangebyscore(pgroups, "-inf", now)

        await _spread(sweep(redis) for redis in self.shards)
        return left

    async def status(self) -> dict[str, Any]:
        history: dict[str, int] = {}
        presence: dict[str, int] = {}

        async def read(redis: Any) -> None:
            async for key in redis.scan_iter(match=f"{self.prefix}:log:*", count=500):
                group = key.decode().split(":", 2)[2].strip("{}")
                history[group] = await redis.llen(key)
            for raw in await redis.zrange(f"{self.prefix}:pgroups", 0, -1):
                group = raw.decode()
                presence[group] = await redis.zcount(
                    self._keys("pc", group), time.time(), "+inf"
                )

        results = await _spread(read(redis) for redis in self.shards)
        return {
            "backend": "redis",
            "url": self.url,
            "shards": self.urls,
            "unreachable": [
                url
                for url, result in zip(self.urls, results, strict=True)
                if isinstance(result, BaseException)
            ],
            "history": history,
            "presence": presence,
        }

    async def register_process(
        self, process_id: str, info: dict[str, Any], ttl: float
    ) -> None:
        # On every shard: the list of processes survives any one shard's outage.
        name = f"{self.prefix}:proc:{process_id}"
        value, px = orjson.dumps(info), int(ttl * 1000)
        await _spread(redis.set(name, value, px=px) for redis in self.shards)

    async def unregister_process(self, process_id: str) -> None:
        name = f"{self.prefix}:proc:{process_id}"
        await _spread(redis.delete(name) for redis in self.shards)

    async def processes(self) -> list[dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for redis in self.shards:
            try:
                names = [
                    name
                    async for name in redis.scan_iter(
                        match=f"{self.prefix}:proc:*", count=500
                    )
                ]
                values = await redis.mget(names) if names else []
            except UNREACHABLE:
                continue  # the other shards hold the same records
            for value in values:
                if value:
                    info = orjson.loads(value)
                    known = latest.get(info["id"])
                    if known is None or known.get("beat", 0) < info.get("beat", 0):
                        latest[info["id"]] = info
        return list(latest.values())

    async def close(self) -> None:
        for redis in self.shards:
            await redis.aclose()


async def _spread(calls: Iterable[Awaitable[Any]]) -> list[Any]:
    """Await ``calls`` (one per shard) at once; return each result or error.

    One shard's outage must not stop the others' work: its error is logged and
    returned in its place. Raises the first error only if every call failed.
    """
    results = await asyncio.gather(*calls, return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    for error in failed:
        if not isinstance(error, UNREACHABLE):
            raise error
        logger.debug("a Redis shard did not answer: %r", error)
    if failed and len(failed) == len(results):
        raise failed[0]
    return results


def epoch_ttl() -> int:
    """Seconds a group's (epoch, seq) outlives its last event: at least HISTORY_TTL."""
    return max(
        int(realtime_settings.HISTORY_EPOCH_TTL), int(realtime_settings.HISTORY_TTL)
    )
