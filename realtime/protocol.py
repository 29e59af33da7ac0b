"""The answers to the protocol frames (``rt.*``) a client sends on an open connection.

``RealtimeConsumer`` binds each function here as its method (``_rt_subscribe``...),
named in its ``protocol_handlers`` table, so a subclass overrides one like any other
method. What changes the connection itself stays in the consumer: ``rt.auth``, the
dispatch of frames, the limits.
"""

from __future__ import annotations

from typing import Any, Protocol

from realtime import exceptions as exc
from realtime import presence
from realtime.connection import Connection
from realtime.groups import check_not_personal, match_patterns, validate_group_name
from realtime.outbound import Outbox
from realtime.permissions import check_permissions
from realtime.schema import registry
from realtime.subscriptions import Subscriptions

PROTOCOL_VERSION = 1


class FrameConnection(Connection, Protocol):
    """What the frame handlers use of a connection (``RealtimeConsumer``)."""

    @property
    def subs(self) -> Subscriptions: ...
    @property
    def outbox(self) -> Outbox: ...
    @property
    def versions(self) -> dict[str, int]: ...

    def get_subscription_patterns(self) -> list[Any]: ...
    async def on_subscribe(self, group: str) -> None: ...
    async def on_unsubscribe(self, group: str) -> None: ...


async def rt_ping(consumer: FrameConnection, frame_id: str | None, data: dict) -> None:
    await consumer.outbox.send_frame(
        {"type": "rt.pong", "id": frame_id, "data": data}
        if frame_id
        else {"type": "rt.pong", "data": data}
    )


async def rt_pong(consumer: FrameConnection, frame_id: str | None, data: dict) -> None:
    consumer.outbox.pong(data)


async def rt_hello(consumer: FrameConnection, frame_id: str | None, data: dict) -> None:
    events = data.get("events", {})
    if not isinstance(events, dict) or len(events) > 1000:
        raise exc.BadEnvelope("rt.hello data.events must be an object of versions")
    agreed = {}
    for type_, version in events.items():
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise exc.BadEnvelope(
                f"version of {str(type_)[:100]!r} must be an int >= 1"
            )
        if type_ in registry:
            consumer.versions[type_] = version
            sent = registry.negotiate(type_, version)
            if sent is not None:
                agreed[type_] = sent
    await consumer.outbox.ack(
        frame_id, {"protocol": PROTOCOL_VERSION, "events": agreed}
    )


async def rt_subscribe(
    consumer: FrameConnection, frame_id: str | None, data: dict
) -> None:
    group = validate_group_name(data.get("group"))
    since, epoch = data.get("since"), data.get("epoch")
    if since is not None and (
        not isinstance(since, int) or isinstance(since, bool) or since < 0
    ):
        raise exc.BadEnvelope("since must be an int >= 0")
    if epoch is not None and (not isinstance(epoch, str) or len(epoch) > 64):
        raise exc.BadEnvelope("epoch must be a string")
    check_not_personal(group)
    found = match_patterns(consumer.get_subscription_patterns(), group)
    if found is None:
        raise exc.PermissionDenied(f"group {group!r} may not be subscribed to")
    params, permission_classes = found
    await check_permissions(
        permission_classes or (), "has_subscribe_permission", consumer, group, **params
    )
    if await consumer.subs.subscribe(group, frame_id, since, epoch):
        await consumer.on_subscribe(group)


async def rt_unsubscribe(
    consumer: FrameConnection, frame_id: str | None, data: dict
) -> None:
    group = validate_group_name(data.get("group"))
    presence.check_churn(consumer, group)
    if group == consumer.subs.personal:
        raise exc.PermissionDenied("the personal group cannot be left")
    if await consumer.subs.leave(group):
        await consumer.on_unsubscribe(group)
    await consumer.outbox.ack(frame_id, {"group": group})


async def rt_presence(
    consumer: FrameConnection, frame_id: str | None, data: dict
) -> None:
    group = validate_group_name(data.get("group"))
    sub = consumer.subs.get(group)
    if sub is None or not sub.presence:
        raise exc.PermissionDenied(f"subscribe to {group!r} to see its presence")
    await consumer.outbox.ack(frame_id, await presence.state(group))
