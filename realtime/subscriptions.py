"""A connection's subscriptions: joining groups, recovery, continuity and presence.

``rt.subscribe`` joins the group live first (buffering), reads history after
``since``, then sends the ack, the replay and the buffered events merged by seq, so
nothing is lost or duplicated (docs/history.md).

Afterwards each history group's events must arrive one seq after the other within
one epoch. A gap (a layer message lost) or a new epoch (history restarted) buffers
the group's live events and repairs from history; what history cannot give back is
announced with ``rt.reset``, so a socket never misses an event without being told.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from typing import Any, cast

import orjson

from realtime import exceptions as exc
from realtime import history, metrics, presence
from realtime.backends.base import HistoryRead
from realtime.connection import Connection
from realtime.frames import layer_message
from realtime.hub import Hub
from realtime.layers import unreachable
from realtime.live import Event
from realtime.outbound import CLOSED, SLOW, Outbox, background
from realtime.settings import realtime_settings

logger = logging.getLogger(__name__)


class Subscription:
    __slots__ = ("buffer", "epoch", "group", "last_seq", "presence", "reset_due")

    def __init__(self, group: str) -> None:
        self.group = group
        self.last_seq = 0
        self.epoch: str | None = None  # the epoch last_seq belongs to
        self.buffer: list[Event] | None = []  # events held while recovering
        self.presence = False
        # An rt.reset to send before the next event (a loss without seqs).
        self.reset_due: str | None = None


class Subscriptions(Mapping[str, Subscription]):
    """The groups one connection has joined, by name, and the delivery of their
    events: in order, repaired from history, or announced with ``rt.reset``."""

    # One per socket, most of them idle: no instance dict.
    __slots__ = (
        "_connection_id",
        "_groups",
        "connection",
        "hub",
        "outbox",
        "personal",
        "versions",
    )

    def __init__(
        self,
        connection: Connection,
        outbox: Outbox,
        hub: Hub,
        *,
        versions: dict[str, int],
    ) -> None:
        self.connection = connection
        self.outbox = outbox
        self.hub = hub
        # The event versions the client declared in rt.hello (shared, filled later).
        self.versions = versions
        #: The user's own group, joined by the server (never by the client).
        self.personal: str | None = None
        self._groups: dict[str, Subscription] = {}
        self._connection_id = connection.connection_id

    def __getitem__(self, group: str) -> Subscription:
        return self._groups[group]

    def __iter__(self) -> Iterator[str]:
        return iter(self._groups)

    def __len__(self) -> int:
        return len(self._groups)

    @property
    def presence_groups(self) -> list[str]:
        """Groups where this connection is listed in presence (leases to renew)."""
        return [group for group, sub in self._groups.items() if sub.presence]

    def client_groups(self) -> list[str]:
        """The groups the client subscribed to (the personal group left out)."""
        return [group for group in self._groups if group != self.personal]

    # -- joining and leaving ------------------------------------------------------

    async def join_personal(self, group: str) -> None:
        """Join the user's own group, from its current position."""
        self.personal = group
        self._groups[group] = sub = Subscription(group)
        await self.hub.join(group, self.connection)  # held in sub.buffer meanwhile
        await self.position(sub)

    async def subscribe(
        self, group: str, frame_id: str | None, since: int | None, epoch: str | None
    ) -> bool:
        """Join ``group`` (permissions already checked), answer frame ``frame_id``
        and replay from ``since``; True if it was not subscribed before."""
        groups = self._groups
        previous = groups.get(group)
        if previous is None and (
            len(self.client_groups()) >= realtime_settings.MAX_SUBSCRIPTIONS
        ):
            raise exc.PermissionDenied(
                f"at most {realtime_settings.MAX_SUBSCRIPTIONS} subscriptions per "
                "connection",
                code="forbidden",
            )
        # Subscribing again (a client filling a gap) keeps the hub membership and the
        # presence entry: only the delivery state starts over.
        groups[group] = sub = Subscription(group)
        if previous is None:
            try:
                await self.hub.join(group, self.connection)
            except BaseException:
                # Not joined: a retry must join, not find the group subscribed.
                del groups[group]
                raise
        else:
            sub.presence = previous.presence
        replay: list[tuple[int, str]] = []
        try:
            if history.keeps_history(group):
                if since is None:
                    seq, current_epoch = await self.hub.subscribe_reads.position(group)
                    recovered = True
                else:
                    read = await self.hub.subscribe_reads.since(group, since, epoch)
                    seq, current_epoch = read.seq, read.epoch
                    recovered, replay = read.recovered, read.frames
            else:
                seq, current_epoch, recovered = None, None, since is None
        except BaseException:
            await self._undo_subscribe(sub, previous)
            raise
        await self.outbox.ack(
            frame_id,
            {
                "group": group,
                "seq": seq,
                "epoch": current_epoch,
                "recovered": recovered,
            },
        )
        metrics.recovery(since, recovered)
        sub.last_seq, sub.epoch = seq or 0, current_epoch
        if recovered and since is not None:
            sub.last_seq = since
            await self._replay(sub, replay)
        buffered, sub.buffer = sub.buffer or [], None
        for event in buffered:
            self.push(event)
        if not sub.presence and presence.tracks_presence(group):
            sub.presence = True
            await presence.join(self.connection, group)
        return previous is None

    async def _undo_subscribe(
        self, sub: Subscription, previous: Subscription | None
    ) -> None:
        """A subscribe failed after joining: leave, or go back to the previous
        subscription with what arrived meanwhile (nothing is held forever)."""
        if self._groups.get(sub.group) is not sub:
            return
        if previous is None:
            del self._groups[sub.group]
            await self.hub.leave(sub.group, self.connection)
            return
        self._groups[sub.group] = previous
        for event in sub.buffer or ():
            self.push(event)

    async def leave(self, group: str) -> bool:
        """Leave ``group`` (its presence too); False if it was not joined."""
        sub = self._groups.pop(group, None)
        if sub is None:
            return False
        await self._release(sub)
        return True

    async def release(self, group: str) -> None:
        """Leave ``group`` as the connection closes: it stays listed until clear()."""
        await self._release(self._groups[group])

    def clear(self) -> None:
        """Forget every group (all released)."""
        self._groups.clear()

    async def _release(self, sub: Subscription) -> None:
        await self.hub.leave(sub.group, self.connection)
        if sub.presence:
            await presence.leave(self.connection, sub.group)

    # -- delivery -----------------------------------------------------------------

    def push(self, event: Event) -> None:
        """Write a group event to the socket without waiting (called by the hub)."""
        sub = self._groups.get(event.group)
        if sub is None or event.exclude == self._connection_id:
            return
        if sub.buffer is not None:
            sub.buffer.append(event)
            return
        if sub.reset_due is not None:
            self._due_reset(sub)
        if event.seq is not None and not self._in_order(sub, event):
            return
        outbox = self.outbox
        if outbox.state is SLOW:
            return  # closing with 4507: the client recovers the rest from history
        if self.versions:
            text = event.text_for(self.versions.get(event.type))
            if text is None:
                return
            too_slow = outbox.write(text)
        else:
            # One ASGI message and one frame per event per process: servers only
            # read the message, and the frame is the same bytes on every socket.
            too_slow = outbox.write(event.text, event.message, event.frame, event)
        if too_slow:
            outbox.too_slow()

    # -- continuity ---------------------------------------------------------------

    async def position(self, sub: Subscription) -> None:
        """Start ``sub`` (joined, holding events) at its group's current position."""
        if history.keeps_history(sub.group):
            try:
                reads = self.hub.subscribe_reads
                sub.last_seq, sub.epoch = await reads.position(sub.group)
            except unreachable() as error:
                logger.warning("position of %s unknown: %r", sub.group, error)
                sub.last_seq = -1  # the first event tells
        buffered, sub.buffer = sub.buffer or [], None
        for event in buffered:
            self.push(event)

    def _in_order(self, sub: Subscription, event: Event) -> bool:
        """True if ``event`` is the next of ``sub``'s group; else drop it (a
        duplicate) or start a repair (a gap, a new epoch) and return False."""
        seq = cast(int, event.seq)
        if sub.last_seq < 0:
            sub.epoch, sub.last_seq = event.epoch, seq
            return True
        if sub.epoch is None and sub.last_seq == 0:
            sub.epoch = event.epoch  # the group's first epoch since subscribing
        if event.epoch is not None and event.epoch != sub.epoch:
            self._start_repair(sub, event)
            return False
        if seq <= sub.last_seq:
            return False  # already delivered (replay and live overlap)
        if seq > sub.last_seq + 1:
            self._start_repair(sub, event)
            return False
        sub.last_seq = seq
        return True

    def check_position(self, group: str, epoch: str, seq: int) -> None:
        """The hub read ``group``'s position: repair if this socket is behind it."""
        sub = self._groups.get(group)
        if sub is None or sub.buffer is not None or sub.last_seq < 0:
            return  # not subscribed, subscribing / repairing, or no position yet
        if epoch != sub.epoch or seq > sub.last_seq:
            self._start_repair(sub, None)

    def _start_repair(self, sub: Subscription, event: Event | None) -> None:
        sub.buffer = [] if event is None else [event]
        read = self.hub.read_since(sub.group, sub.last_seq, sub.epoch)
        background(self._repair(sub, read))

    async def _repair(self, sub: Subscription, read: Any) -> None:
        """Fill ``sub``'s gap from history, or tell the client with rt.reset."""
        group = sub.group
        found: HistoryRead | None
        try:
            found = read_found = await asyncio.shield(read.task)
            if not read_found.recovered and read_found.epoch not in (None, sub.epoch):
                # A new epoch: its events from the first, when the log has them.
                fresh = self.hub.read_since(group, 0, read_found.epoch)
                first = await asyncio.shield(fresh.task)
                if first.recovered and first.epoch == read_found.epoch:
                    found, read = first, fresh
        except unreachable() as error:
            logger.warning("history of %s unreachable for a repair: %r", group, error)
            found, issued = None, None
        else:
            issued = read.issued
        if self.outbox.state is CLOSED or self._groups.get(group) is not sub:
            return  # closed, unsubscribed or resubscribed meanwhile
        if found is None:
            # Go on from the first held event: the client is told what it missed.
            held = next((e for e in sub.buffer or () if e.seq is not None), None)
            if held is not None:
                await self._reset(
                    sub, held.epoch, cast(int, held.seq) - 1, "history_unavailable"
                )
            else:
                await self._reset(sub, sub.epoch, sub.last_seq, "history_unavailable")
        elif found.recovered:
            if sub.epoch is None and sub.last_seq == 0:
                sub.epoch = found.epoch  # subscribed before the group's first event
            elif found.epoch != sub.epoch:
                # Seqs of a new epoch, from its start: the old epoch's tail may be
                # lost with the store that held it.
                await self._reset(sub, found.epoch, 0, "epoch_changed")
            else:
                metrics.repaired()
            await self._replay(sub, found.frames)
        else:
            reason = "epoch_changed" if found.epoch != sub.epoch else "history_trimmed"
            await self._reset(sub, found.epoch, found.seq, reason)
        buffered, sub.buffer = sub.buffer or [], None
        for event in buffered:
            if (
                issued is not None
                and event.arrival <= issued
                and (
                    event.epoch != sub.epoch
                    or (event.seq is not None and event.seq <= sub.last_seq)
                )
            ):
                continue  # published before the read: the read covered it
            self.push(event)  # held again if it opens another gap

    async def _replay(self, sub: Subscription, frames: list[tuple[int, str]]) -> None:
        for frame_seq, text in frames:
            if frame_seq > sub.last_seq:
                sub.last_seq = frame_seq
                out = (
                    _replayed(sub.group, frame_seq, text, self.versions)
                    if self.versions
                    else text
                )
                if out is not None:
                    await self.outbox.send_text(out)

    async def _reset(
        self, sub: Subscription, epoch: str | None, seq: int | None, reason: str
    ) -> None:
        if seq is not None:
            sub.epoch, sub.last_seq = epoch, seq
        self.hub.warn_lost(
            sub.group, reason, "subscribers told with rt.reset (events were lost)"
        )
        metrics.reset(reason)
        await self.outbox.send_frame(
            {
                "type": "rt.reset",
                "group": sub.group,
                "data": {"epoch": epoch, "seq": seq, "reason": reason},
            }
        )

    def mark_reset(self, group: str, reason: str) -> None:
        """Events of ``group`` (no history) may be lost: say so before the next."""
        sub = self._groups.get(group)
        if sub is not None:
            sub.reset_due = reason

    def flush_reset(self, group: str) -> None:
        """Send a due rt.reset now (no event came to carry it)."""
        sub = self._groups.get(group)
        if sub is not None and sub.reset_due is not None and sub.buffer is None:
            self._due_reset(sub)

    def _due_reset(self, sub: Subscription) -> None:
        reason, sub.reset_due = sub.reset_due, None
        metrics.reset(cast(str, reason))
        frame = {
            "type": "rt.reset",
            "group": sub.group,
            "data": {"epoch": None, "seq": None, "reason": reason},
        }
        outbox = self.outbox
        if outbox.write(orjson.dumps(frame).decode()):
            outbox.too_slow()


def _replayed(group: str, seq: int, text: str, versions: dict) -> str | None:
    """A stored frame as a client that declared ``versions`` should get it."""
    frame = orjson.loads(text)
    event = Event(layer_message(group, frame["type"], frame.get("v"), seq, text))
    return event.text_for(versions.get(frame["type"]))
