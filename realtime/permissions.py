"""Permission classes, DRF style, checked at connect, at subscribe and per message.

A permission may define its methods ``async def`` or plain ``def``; plain methods run
in a thread (``database_sync_to_async``) so they may use the ORM. Every check, at
every point, goes through one loop: ``denied_by`` (and ``check_permissions``,
which raises).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from channels.db import database_sync_to_async

from realtime.connection import Connection
from realtime.envelope import Message
from realtime.exceptions import PermissionDenied


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


class IsStaff(IsAuthenticated):
    message = "Staff only."

    async def has_permission(self, consumer: Connection) -> bool:  # type: ignore[override]
        return bool(await super().has_permission(consumer) and consumer.user.is_staff)


async def denied_by(
    permissions: Iterable[Any],
    check: str,
    consumer: Connection,
    *args: Any,
    **params: Any,
) -> BasePermission | None:
    """Run check ``check`` (``has_permission``, ``has_subscribe_permission``,
    ``has_message_permission``) of each permission in turn; return the first that
    refuses, or None when all allow. Permissions may be classes or instances."""
    for permission in permissions:
        if isinstance(permission, type):
            permission = permission()
        if check != "has_permission" and getattr(type(permission), check) is getattr(
            BasePermission, check
        ):
            # Not overridden: the default defers to has_permission, sync or async.
            allowed = await _verdict(permission.has_permission, consumer)
        else:
            allowed = await _verdict(
                getattr(permission, check), consumer, *args, **params
            )
        if not allowed:
            return permission
    return None


async def check_permissions(
    permissions: Iterable[Any],
    check: str,
    consumer: Connection,
    *args: Any,
    **params: Any,
) -> None:
    """Raise PermissionDenied, with the refusing permission's message, unless every
    permission allows ``check`` (see ``denied_by``)."""
    permission = await denied_by(permissions, check, consumer, *args, **params)
    if permission is not None:
        raise PermissionDenied(permission.message)


async def _verdict(method: Any, *args: Any, **kwargs: Any) -> bool:
    """Call a permission method, sync or async, and return its verdict."""
    if inspect.iscoroutinefunction(method):
        result = await method(*args, **kwargs)
    else:
        result = await database_sync_to_async(method)(*args, **kwargs)
    # A sync override that returns super()'s result may hand back the coroutine of
    # an async has_permission: await it rather than treat the coroutine as truthy.
    while inspect.isawaitable(result):
        result = await result
    return bool(result)
