"""Which groups keep history (seq numbers and a bounded log) and how to read it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

from django.core.signals import setting_changed

from realtime.backends import get_backend
from realtime.backends.base import HistoryRead
from realtime.settings import realtime_settings


def keeps_history(group: str) -> bool:
    keeps = _known.get(group)
    if keeps is None:
        keeps = any(fnmatchcase(group, p) for p in realtime_settings.HISTORY_GROUPS)
        if len(_known) >= 4096:  # many groups (one per user): start over
            _known.clear()
        _known[group] = keeps
    return keeps


_known: dict[str, bool] = {}


def _forget(**kwargs: Any) -> None:
    # HISTORY_GROUPS may have changed (override_settings), like the fast path's.
    _known.clear()


setting_changed.connect(_forget)


async def position(group: str) -> tuple[int, str | None]:
    return await get_backend().position(group)


#: ``since`` of a read that only wants the group's position.
POSITION = 2**53


class TurnReads:
    """The subscribes of one loop turn to one group share one history read.

    When a process takes in many clients at once (a deploy's reconnect storm, a
    page everyone opens), each subscribe used to cost a Redis round trip of its own,
    and as many pooled connections as were in flight. Here the first subscribe of a
    group in a loop turn starts a read that runs at the next turn, from the smallest
    ``since`` asked for; each subscriber gets what its own read would have returned.
    Every subscriber joined the group before asking, and the read is sent after
    that, so it covers everything the subscriber's own read would have covered.
    """

    __slots__ = ("_members", "_open", "known")

    def __init__(self, members: Callable[[str], object] = lambda group: None) -> None:
        self._open: dict[str, list[tuple[int, str | None, asyncio.Future]]] = {}
        # The hub's member set of a group (None: not joined): a position learned
        # while the hub stayed joined holds for every later subscriber.
        self._members = members
        self.known = KnownPositions()

    async def since(self, group: str, since: int, epoch: str | None) -> HistoryRead:
        """What ``get_backend().since(group, since, epoch)`` returns, shared."""
        future = asyncio.get_running_loop().create_future()
        waiters = self._open.get(group)
        if waiters is None:
            waiters = self._open[group] = []
            _keep(asyncio.ensure_future(self._read(group, waiters)))
        waiters.append((since, epoch, future))
        return await future

    async def position(self, group: str) -> tuple[int, str | None]:
        known = self.known.get(group, self._members(group))
        if known is not None:
            return known
        read = await self.since(group, POSITION, None)
        return read.seq, read.epoch

    async def _read(
        self, group: str, waiters: list[tuple[int, str | None, asyncio.Future]]
    ) -> None:
        # From here on the batch is closed: a later subscribe joined after this
        # read was sent and needs a read of its own.
        if self._open.get(group) is waiters:
            del self._open[group]
        first = min(since for since, _, _ in waiters)
        members = self._members(group)
        backend = get_backend()
        try:
            if first == POSITION:
                seq, epoch = await backend.position(group)
                read = HistoryRead(seq=seq, epoch=epoch, recovered=False)
            else:
                read = await backend.since(group, first, None)
        except BaseException as error:
            for _, _, future in waiters:
                if not future.done():
                    if isinstance(error, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        if members is not None and self._members(group) is members:
            self.known.learned(group, read.seq, read.epoch, members)
        for since, epoch, future in waiters:
            if future.done():  # its connection went away meanwhile
                continue
            found = _derive(read, first, since, epoch)
            if found is None:
                _own_read(future, group, since, epoch)
            else:
                future.set_result(found)


class KnownPositions:
    """Each group's position as this process last learned it, for subscribes that
    need only the position: in a burst of clients joining one group, one Redis
    read a second per group instead of one per client.

    A position is learned from a read sent while the hub was joined to the group
    and kept while the same membership lasts, for at most ``LIFETIME`` seconds.
    Every event the hub dispatches moves it on (``advance``): seq+1 of the same
    epoch. Anything else (a gap, another epoch) forgets it, as does a layer outage
    (``clear``). A subscriber answered from here joined before asking, so every
    later event reaches it; an event dispatched before it joined is at or below
    the answer, as with a read (a read answers with what Redis has, which may be
    ahead of what reached this process).
    """

    LIFETIME = 1.0

    __slots__ = ("_known",)

    def __init__(self) -> None:
        # group -> [seq, epoch, expires at (monotonic), the hub's member set]
        self._known: dict[str, list[Any]] = {}

    def get(self, group: str, members: object) -> tuple[int, str] | None:
        entry = self._known.get(group)
        if entry is None:
            return None
        if members is None or entry[3] is not members or time.monotonic() > entry[2]:
            del self._known[group]
            return None
        return entry[0], entry[1]

    def learned(self, group: str, seq: int, epoch: str | None, members: object) -> None:
        if epoch is None:  # no history yet: the first event starts an epoch
            self._known.pop(group, None)
            return
        self._known[group] = [seq, epoch, time.monotonic() + self.LIFETIME, members]

    def advance(self, group: str, seq: int | None, epoch: str | None) -> None:
        """An event of ``group`` reached the hub."""
        entry = self._known.get(group)
        if entry is None or seq is None:
            return
        if epoch == entry[1] and seq <= entry[0] + 1:
            if seq > entry[0]:
                entry[0] = seq
            return  # an event the learned position already counted: no news
        del self._known[group]

    def clear(self) -> None:
        self._known.clear()


def _derive(
    read: HistoryRead, first: int, since: int, epoch: str | None
) -> HistoryRead | None:
    """The read from ``since`` and ``epoch``, out of ``read`` (from ``first`` with
    no epoch); None when it cannot tell (history trimmed past ``first``)."""
    if read.epoch is None:
        return HistoryRead(seq=0, epoch=None, recovered=since == 0)
    if read.recovered or since == first or since > read.seq:
        # Recovered from ``first`` means the log holds every seq after it, hence
        # after ``since`` too; otherwise only the same ``since`` (or one past the
        # position) is known to fail the same way.
        ok = read.recovered and epoch in (None, read.epoch) and since <= read.seq
        frames = [frame for frame in read.frames if frame[0] > since] if ok else []
        return HistoryRead(frames=frames, seq=read.seq, epoch=read.epoch, recovered=ok)
    return None


def _own_read(
    future: asyncio.Future, group: str, since: int, epoch: str | None
) -> None:
    async def read() -> None:
        try:
            found = await get_backend().since(group, since, epoch)
        except Exception as error:
            if not future.done():
                future.set_exception(error)
            return
        if not future.done():
            future.set_result(found)

    _keep(asyncio.ensure_future(read()))


def _keep(task: asyncio.Future) -> None:
    # The loop holds tasks weakly: a read nobody references could vanish mid-way.
    _running.add(task)
    task.add_done_callback(_running.discard)


_running: set[asyncio.Future] = set()
