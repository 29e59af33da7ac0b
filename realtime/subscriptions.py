"""Subscriptions: joining groups with permission checks, recovery and presence.

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
from typing import TYPE_CHECKING, Any, ClassVar, cast

import orjson

from realtime import exceptions as exc
from realtime import history, metrics, presence
from realtime.backends.base import HistoryRead
from realtime.connection import Connection
from realtime.groups import (
    check_not_personal,
    compile_patterns,
    match_patterns,
    validate_group_name,
)
from realtime.layers import unreachable
from realtime.live import Event
from realtime.outbound import _background
from realtime.permissions import call_check
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


class SubscriptionsMixin:
    """The ``rt.subscribe`` / ``rt.unsubscribe`` side of RealtimeConsumer."""

    if TYPE_CHECKING:  # provided by RealtimeConsumer and OutboundMixin
        _compiled_subscriptions: ClassVar[list | None]
        hub: Any
        subs: dict[str, Subscription]
        subscriptions: dict[str, list]
        personal_group: str | None
        user: Any
        versions: dict[str, int]

        async def _ack(self, id: str | None, data: Any = None) -> None: ...
        async def _send_frame(self, frame: dict) -> None: ...
        async def _send_text(self, text: str) -> None: ...
        def push(self, event: Event) -> None: ...
        def _write(
            self, text: str, message: dict | None = ..., frame: bytes | None = ...
        ) -> bool: ...
        def _too_slow(self) -> None: ...

        closed: bool
        connection_id: str

        async def deliver(self, event: Event) -> None: ...
        async def on_subscribe(self, group: str) -> None: ...
        async def on_unsubscribe(self, group: str) -> None: ...

    def is_subscribed(self, group: str) -> bool:
        """Return True if this connection is subscribed to ``group``."""
        return group in self.subs

    @property
    def presence_groups(self) -> list[str]:
        """Groups where this connection is listed in presence (leases to renew)."""
        return [group for group, sub in self.subs.items() if sub.presence]

    def get_subscription_patterns(self) -> list:
        compiled = type(self).__dict__.get("_compiled_subscriptions")
        if compiled is None:
            compiled = compile_patterns(self.subscriptions)
            type(self)._compiled_subscriptions = compiled
        return compiled

    async def _rt_subscribe(self, frame_id: str | None, data: dict) -> None:
        group = validate_group_name(data.get("group"))
        since, epoch = data.get("since"), data.get("epoch")
        if since is not None and (
            not isinstance(since, int) or isinstance(since, bool) or since < 0
        ):
            raise exc.BadEnvelope("since must be an int >= 0")
        if epoch is not None and (not isinstance(epoch, str) or len(epoch) > 64):
            raise exc.BadEnvelope("epoch must be a string")
        await self._check_subscribe(group)
        previous = self.subs.get(group)
        if previous is None and (
            len(self._client_subs()) >= realtime_settings.MAX_SUBSCRIPTIONS
        ):
            raise exc.PermissionDenied(
                f"at most {realtime_settings.MAX_SUBSCRIPTIONS} subscriptions per "
                "connection",
                code="forbidden",
            )
        # Subscribing again (a client filling a gap) keeps the hub membership and the
        # presence entry: only the delivery state starts over.
        self.subs[group] = sub = Subscription(group)
        if previous is None:
            try:
                await self.hub.join(group, self)
            except BaseException:
                # Not joined: a retry must join, not find the group subscribed.
                del self.subs[group]
                raise
        else:
            sub.presence = previous.presence
        replay: list[tuple[int, str]] = []
        try:
            if history.keeps_history(group):
                if since is None:
                    seq, current_epoch = await history.position(group)
                    recovered = True
                else:
                    read = await history.read_since(group, since, epoch)
                    seq, current_epoch = read.seq, read.epoch
                    recovered, replay = read.recovered, read.frames
            else:
                seq, current_epoch, recovered = None, None, since is None
        except BaseException:
            await self._undo_subscribe(sub, previous)
            raise
        await self._ack(
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
            await self.deliver(event)
        if not sub.presence and presence.tracks_presence(group):
            sub.presence = True
            await presence.join(cast(Connection, self), group)
        if previous is None:
            await self.on_subscribe(group)

    # -- continuity ---------------------------------------------------------------

    async def _position(self, sub: Subscription) -> None:
        """Start ``sub`` (joined, holding events) at its group's current position."""
        if history.keeps_history(sub.group):
            try:
                sub.last_seq, sub.epoch = await history.position(sub.group)
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
        sub = self.subs.get(group)
        if sub is None or sub.buffer is not None or sub.last_seq < 0:
            return  # not subscribed, subscribing / repairing, or no position yet
        if epoch != sub.epoch or seq > sub.last_seq:
            self._start_repair(sub, None)

    def _start_repair(self, sub: Subscription, event: Event | None) -> None:
        sub.buffer = [] if event is None else [event]
        read = self.hub.read_since(sub.group, sub.last_seq, sub.epoch)
        _background(self._repair(sub, read))

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
        if self.closed or self.subs.get(group) is not sub:
            return  # unsubscribed or resubscribed meanwhile
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
                    await self._send_text(out)

    async def _reset(
        self, sub: Subscription, epoch: str | None, seq: int | None, reason: str
    ) -> None:
        if seq is not None:
            sub.epoch, sub.last_seq = epoch, seq
        self.hub.warn_lost(
            sub.group, reason, "subscribers told with rt.reset (events were lost)"
        )
        await self._send_reset(sub.group, epoch, seq, reason)

    async def _send_reset(
        self, group: str, epoch: str | None, seq: int | None, reason: str
    ) -> None:
        metrics.reset(reason)
        await self._send_frame(
            {
                "type": "rt.reset",
                "group": group,
                "data": {"epoch": epoch, "seq": seq, "reason": reason},
            }
        )

    def mark_reset(self, group: str, reason: str) -> None:
        """Events of ``group`` (no history) may be lost: say so before the next."""
        sub = self.subs.get(group)
        if sub is not None:
            sub.reset_due = reason

    def flush_reset(self, group: str) -> None:
        """Send a due rt.reset now (no event came to carry it)."""
        sub = self.subs.get(group)
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
        if self._write(orjson.dumps(frame).decode()):
            self._too_slow()

    async def _undo_subscribe(
        self, sub: Subscription, previous: Subscription | None
    ) -> None:
        """A subscribe failed after joining: leave, or go back to the previous
        subscription with what arrived meanwhile (nothing is held forever)."""
        if self.subs.get(sub.group) is not sub:
            return
        if previous is None:
            del self.subs[sub.group]
            await self.hub.leave(sub.group, self)
            return
        self.subs[sub.group] = previous
        for event in sub.buffer or ():
            self.push(event)

    def _client_subs(self) -> list[str]:
        return [group for group in self.subs if group != self.personal_group]

    async def _check_subscribe(self, group: str) -> None:
        check_not_personal(group)
        found = match_patterns(self.get_subscription_patterns(), group)
        if found is None:
            raise exc.PermissionDenied(f"group {group!r} may not be subscribed to")
        params, permission_classes = found
        for permission_class in permission_classes or ():
            permission = permission_class()
            if not await call_check(
                permission.has_subscribe_permission, self, group, **params
            ):
                raise exc.PermissionDenied(permission.message)

    async def _unsubscribe(self, group: str) -> None:
        if group == self.personal_group:
            raise exc.PermissionDenied("the personal group cannot be left")
        sub = self.subs.pop(group, None)
        if sub is None:
            return
        await self.hub.leave(group, self)
        if sub.presence:
            await presence.leave(cast(Connection, self), group)
        await self.on_unsubscribe(group)


def _replayed(group: str, seq: int, text: str, versions: dict) -> str | None:
    """A stored frame as a client that declared ``versions`` should get it."""
    frame = orjson.loads(text)
    event = Event(
        {
            "group": group,
            "event": frame["type"],
            "v": frame.get("v"),
            "seq": seq,
            "text": text,
        }
    )
    return event.text_for(versions.get(frame["type"]))
