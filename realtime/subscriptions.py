"""Subscriptions: joining groups with permission checks, recovery and presence.

``rt.subscribe`` joins the group live first (buffering), reads history after
``since``, then sends the ack, the replay and the buffered events merged by seq, so
nothing is lost or duplicated (docs/history.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

import orjson

from realtime import exceptions as exc
from realtime import history, metrics, presence
from realtime.groups import (
    check_not_personal,
    compile_patterns,
    match_patterns,
    validate_group_name,
)
from realtime.hub import Event
from realtime.permissions import call_check
from realtime.settings import realtime_settings

if TYPE_CHECKING:
    from realtime.consumers import RealtimeConsumer


class Subscription:
    __slots__ = ("buffer", "group", "last_seq", "presence")

    def __init__(self, group: str) -> None:
        self.group = group
        self.last_seq = 0
        self.buffer: list[Event] | None = []  # events held while recovering
        self.presence = False


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
        async def _send_text(self, text: str) -> None: ...
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
            await self.hub.join(group, self)
        else:
            sub.presence = previous.presence
        replay: list[tuple[int, str]] = []
        if history.keeps_history(group):
            if since is None:
                seq, current_epoch = await history.position(group)
                recovered = True
            else:
                read = await history.read_since(group, since, epoch)
                seq, current_epoch, recovered = read.seq, read.epoch, read.recovered
                replay = read.frames
        else:
            seq, current_epoch, recovered = None, None, since is None
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
        sub.last_seq = seq or 0
        if recovered and since is not None:
            sub.last_seq = since
            for frame_seq, text in replay:
                if frame_seq > sub.last_seq:
                    sub.last_seq = frame_seq
                    out = (
                        _replayed(group, frame_seq, text, self.versions)
                        if self.versions
                        else text
                    )
                    if out is not None:
                        await self._send_text(out)
        buffered, sub.buffer = sub.buffer or [], None
        for event in buffered:
            await self.deliver(event)
        if not sub.presence and presence.tracks_presence(group):
            sub.presence = True
            await presence.join(cast("RealtimeConsumer", self), group)
        if previous is None:
            await self.on_subscribe(group)

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
            await presence.leave(cast("RealtimeConsumer", self), group)
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
