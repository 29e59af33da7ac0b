"""The backend contract: history (seq, epoch, bounded log), presence and one-time claims.

One backend instance serves a whole process. The memory backend serves one process
(the embedded default); the Redis backend is shared by every process and machine.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

# Processes this process knows of (backends without a shared store).
_local_processes: dict[str, tuple[float, dict[str, Any]]] = {}


@dataclass
class HistoryRead:
    """What ``since()`` found: frames after ``since`` and the group's position."""

    frames: list[tuple[int, str]] = field(default_factory=list)
    seq: int = 0
    epoch: str | None = None
    recovered: bool = True


@dataclass
class PresenceState:
    """Who is in a group: one member per user, anonymous connections only counted."""

    members: list[dict[str, Any]]
    anonymous: int
    connections: int


class BaseBackend(ABC):
    """History, presence and single-use claims, as one process sees them."""

    @abstractmethod
    async def append(self, group: str, prefix: str, suffix: str) -> tuple[int, str]:
        """Assign the next seq of ``group`` and store ``prefix + seq + suffix``.

        Atomic: two concurrent appends never get the same seq. Returns (seq, epoch).
        The log keeps at most HISTORY_SIZE frames for at most HISTORY_TTL seconds.
        """

    @abstractmethod
    async def since(self, group: str, since: int, epoch: str | None) -> HistoryRead:
        """Return the frames after ``since``, oldest first.

        ``recovered`` is False when the log no longer holds every frame after
        ``since``, or when ``epoch`` is not the group's current epoch. A group
        without a position gets one (seq 0, a new epoch).
        """

    @abstractmethod
    async def position(self, group: str) -> tuple[int, str | None]:
        """Return (last seq, epoch) of ``group``, creating (0, a new epoch) if it
        has none, so that a subscriber always knows the epoch of its seqs."""

    async def positions(self, groups: list[str]) -> list[tuple[int, str | None]]:
        """(last seq, epoch) of each group, in order, (0, None) where a group has
        no position; creates none (one round trip where possible)."""
        return [await self.position(group) for group in groups]

    @abstractmethod
    async def claim(self, key: str, ttl: float, *, issued: float | None = None) -> bool:
        """Return True the first time ``key`` is claimed within ``ttl`` seconds.

        ``issued`` (a Unix time) is when the claimed thing was made: a store that
        cannot prove no claim was made before (a failover may lose the old
        master's last claims) refuses it.
        """

    @abstractmethod
    async def presence_join(
        self, group: str, conn_id: str, user_key: str, member: dict | None, ttl: float
    ) -> bool:
        """Add a connection; return True if it is the user's first in ``group``."""

    @abstractmethod
    async def presence_leave(self, group: str, conn_id: str) -> dict | None:
        """Remove a connection; return the user's member summary if that was the
        user's last connection in ``group``, else None."""

    @abstractmethod
    async def presence_refresh(
        self, entries: list[tuple[str, str]], ttl: float
    ) -> None:
        """Extend the lease of live (group, conn_id) pairs held by this process."""

    @abstractmethod
    async def presence_state(self, group: str) -> PresenceState:
        """Return the live members of ``group``."""

    @abstractmethod
    async def presence_sweep(self) -> list[tuple[str, dict]]:
        """Drop expired connections (a crashed process's); return (group, member)
        for every user who left as a result."""

    async def status(self) -> dict[str, Any]:
        """A summary for operators (``realtime_status``)."""
        return {}

    async def register_process(
        self, process_id: str, info: dict[str, Any], ttl: float
    ) -> None:
        """Announce a live process (``backends.registry``); forgotten after ``ttl``."""
        _local_processes[process_id] = (time.time() + ttl, info)

    async def unregister_process(self, process_id: str) -> None:
        _local_processes.pop(process_id, None)

    async def processes(self) -> list[dict[str, Any]]:
        """The live processes' latest heartbeats."""
        now = time.time()
        return [info for expires, info in _local_processes.values() if expires > now]

    async def close(self) -> None:
        """Release connections."""
