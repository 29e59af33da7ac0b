"""Ephemeral client events: typing indicators and the like.

A consumer lists event types in ``ephemeral_events``; a client sends one with the
target group in the envelope (``{"type": "chat.typing", "group": "room.1", "data":
{...}}``). The server checks the sender is subscribed to that group and allowed to
send, validates ``data``, stamps ``data.user`` with the sender (so it cannot be
forged), and relays the validated data (undeclared keys dropped) to the group's other
members: no history, no echo, and a rate limit of its own so typing bursts never eat
into the frame budget.
"""

from __future__ import annotations

import weakref
from typing import Any

from realtime import exceptions as exc
from realtime.auth import user_summary
from realtime.connection import Connection
from realtime.envelope import Message
from realtime.groups import validate_group_name
from realtime.permissions import check_permissions
from realtime.publishing import publish
from realtime.schema import registry
from realtime.settings import realtime_settings
from realtime.throttling import TokenBucket

# Each connection's bucket for ephemeral events, gone with the connection.
_buckets: weakref.WeakKeyDictionary[Connection, TokenBucket] = (
    weakref.WeakKeyDictionary()
)


async def relay(
    consumer: Connection,
    type_: str,
    v: int | None,
    frame_id: str | None,
    group: Any,
    data: dict,
) -> None:
    """Validate an ephemeral event from ``consumer`` and relay it to ``group``."""
    group = validate_group_name(group)
    if group not in consumer.subs or group == consumer.personal_group:
        raise exc.PermissionDenied(f"subscribe to {group!r} before sending to it")
    spec = registry.get(type_, v)
    if not spec.accepts_from_client():
        raise exc.UnknownType(f"{type_!r} is not accepted from clients")
    clean = spec.validate(data)
    message = Message(type_, spec.version, frame_id, clean, consumer)
    await check_permissions(
        consumer.ephemeral_events[type_] or (),
        "has_message_permission",
        consumer,
        message,
    )
    bucket = _buckets.get(consumer)
    if bucket is None:
        bucket = _buckets[consumer] = TokenBucket(
            realtime_settings.EPHEMERAL_RATE, realtime_settings.EPHEMERAL_BURST
        )
    if not bucket.allow():
        raise exc.RateLimited("too many ephemeral events; slow down")
    # Relay only what the serializer validated, as it represents it (declared fields,
    # normalised values, dates as text): undeclared keys never reach other members.
    # The sender is stamped by the server.
    shown = spec.serializer_class().to_representation(clean)
    payload = {**shown, "user": user_summary(consumer.user)}
    await publish(
        group,
        type_,
        payload,
        v=spec.version,
        history=False,
        exclude=consumer.connection_id,
    )
    if frame_id is not None:
        await consumer.ack(frame_id, {})
