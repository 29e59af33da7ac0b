"""In-memory backend: the embedded default for a single process."""

from __future__ import annotations

import time
import uuid
from collections import deque
from typing import Any

from realtime.backends.base import BaseBackend, HistoryRead, PresenceState
from realtime.settings import realtime_settings


class _Log:
    def __init__(self) -> None:
        self.seq = 0
        self.epoch = uuid.uuid4().hex[:12]
        self.frames: deque[tuple[int, float, str]] = deque()


class MemoryBackend(BaseBackend):
    """History, presence and claims in this process's memory."""

    shared_across_loops = True

    def __init__(self) -> None:
        self.logs: dict[str, _Log] = {}
        self.claims: dict[str, float] = {}
        # group -> conn_id -> (user_key, expires_at); group -> user_key -> member
        self.conns: dict[str, dict[str, tuple[str, float]]] = {}
        self.members: dict[str, dict[str, dict]] = {}

    def _trim(self, log: _Log, now: float) -> None:
        size, ttl = realtime_settings.HISTORY_SIZE, realtime_settings.HISTORY_TTL
        while log.frames and (len(log.frames) > size or log.frames[0][1] < now - ttl):
            log.frames.popleft()

    async def append(self, group: str, prefix: str, suffix: str) -> tuple[int, str]:
        log = self.logs.get(group)
        if log is None:
            log = self.logs[group] = _Log()
        now = time.monotonic()
        log.seq += 1
        log.frames.append((log.seq, now, f"{prefix}{log.seq}{suffix}"))
        self._trim(log, now)
        return log.seq, log.epoch

    async def since(self, group: str, since: int, epoch: str | None) -> HistoryRead:
        log = self.logs.get(group)
        if log is None:
            # A position (seq 0, a new epoch): every ack names its epoch.
            log = self.logs[group] = _Log()
        frames = [(seq, text) for seq, _, text in log.frames if seq > since]
        first = frames[0][0] if frames else log.seq + 1
        recovered = (
            epoch in (None, log.epoch) and since <= log.seq and first == since + 1
        )
        return HistoryRead(
            frames=frames if recovered else [],
            seq=log.seq,
            epoch=log.epoch,
            recovered=recovered,
        )

    async def position(self, group: str) -> tuple[int, str | None]:
        log = self.logs.get(group)
        if log is None:
            log = self.logs[group] = _Log()
        return log.seq, log.epoch

    async def positions(self, groups: list[str]) -> list[tuple[int, str | None]]:
        # Only looks: a group without history stays without a position.
        logs = [self.logs.get(group) for group in groups]
        return [(log.seq, log.epoch) if log else (0, None) for log in logs]

    async def claim(self, key: str, ttl: float, *, issued: float | None = None) -> bool:
        now = time.monotonic()
        if len(self.claims) > 10_000:
            self.claims = {k: t for k, t in self.claims.items() if t > now}
        if self.claims.get(key, 0) > now:
            return False
        self.claims[key] = now + ttl
        return True

    async def presence_join(
        self, group: str, conn_id: str, user_key: str, member: dict | None, ttl: float
    ) -> bool:
        conns = self.conns.setdefault(group, {})
        conns[conn_id] = (user_key, time.monotonic() + ttl)
        if not user_key:
            return False
        self.members.setdefault(group, {})[user_key] = member or {}
        return sum(1 for key, _ in conns.values() if key == user_key) == 1

    async def presence_leave(self, group: str, conn_id: str) -> dict | None:
        conns = self.conns.get(group, {})
        entry = conns.pop(conn_id, None)
        if not conns:
            self.conns.pop(group, None)
        if entry is None or not entry[0]:
            return None
        user_key = entry[0]
        if any(key == user_key for key, _ in conns.values()):
            return None
        return self.members.get(group, {}).pop(user_key, None) or {}

    async def presence_refresh(
        self, entries: list[tuple[str, str]], ttl: float
    ) -> None:
        expires = time.monotonic() + ttl
        for group, conn_id in entries:
            entry = self.conns.get(group, {}).get(conn_id)
            if entry is not None:
                self.conns[group][conn_id] = (entry[0], expires)

    async def presence_state(self, group: str) -> PresenceState:
        now = time.monotonic()
        live = [key for key, exp in self.conns.get(group, {}).values() if exp > now]
        users = dict.fromkeys(key for key in live if key)
        known = self.members.get(group, {})
        return PresenceState(
            members=[known.get(key, {}) for key in users],
            anonymous=sum(1 for key in live if not key),
            connections=len(live),
        )

    async def presence_sweep(self) -> list[tuple[str, dict]]:
        now = time.monotonic()
        left = []
        for group, conns in list(self.conns.items()):
            for conn_id, (_, exp) in list(conns.items()):
                if exp <= now:
                    member = await self.presence_leave(group, conn_id)
                    if member is not None:
                        left.append((group, member))
        return left

    async def status(self) -> dict[str, Any]:
        return {
            "backend": "memory",
            "history": {g: len(log.frames) for g, log in self.logs.items()},
            "presence": {g: len(c) for g, c in self.conns.items()},
        }
