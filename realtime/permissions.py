"""Permission classes, DRF style, checked at connect, at subscribe and per message.

A permission may define its methods ``async def`` or plain ``def``; plain methods run
in a thread (``database_sync_to_async``) so they may use the ORM.
"""

from __future__ import annotations

import inspect
from typing import Any

from channels.db import database_sync_to_async

from realtime.connection import Connection
from realtime.envelope import Message


class BasePermission:
    """Override ``has_permission``; the subscribe and message checks default to it."""

    message = "You do not have permission to perform this action."

    def has_permission(self, consumer: Connection) -> bool:
        """Return True if the connection may be opened (and, by default, do anything)."""
        return True

    def has_subscribe_permission(
        self, consumer: Connection, group: str, **params: str
    ) -> bool:
        """Return True if the connection may join ``group``; ``params`` come from the
        pattern (``room.{room_id}`` gives ``room_id``)."""
        return self.has_permission(consumer)

    def has_message_permission(self, consumer: Connection, message: Message) -> bool:
        """Return True if the connection may send ``message`` to its handler."""
        return self.has_permission(consumer)


class AllowAny(BasePermission):
    async def has_permission(self, consumer: Connection) -> bool:  # type: ignore[override]
        return True


class IsAuthenticated(BasePermission):
    message = "Authentication required."

    async def has_permission(self, consumer: Connection) -> bool:  # type: ignore[override]
        return bool(consumer.user and consumer.user.is_authenticated)

    async def has_subscribe_permission(self, consumer, group, **params):  # type: ignore[override]
        return await self.has_permission(consumer)

    async def has_message_permission(self, consumer, message):  # type: ignore[override]
        return await self.has_permission(consumer)


class IsStaff(IsAuthenticated):
    message = "Staff only."

    async def has_permission(self, consumer: Connection) -> bool:  # type: ignore[override]
        return bool(await super().has_permission(consumer) and consumer.user.is_staff)


async def call_check(method: Any, *args: Any, **kwargs: Any) -> bool:
    """Call a permission method, sync or async, and return its verdict."""
    if inspect.iscoroutinefunction(method):
        result = await method(*args, **kwargs)
    else:
        result = await database_sync_to_async(method)(*args, **kwargs)
    # A sync default (has_subscribe_permission) may return the coroutine of an
    # async has_permission: await it rather than treat the coroutine as truthy.
    while inspect.isawaitable(result):
        result = await result
    return bool(result)
