"""Presence: who is in a group, across processes, one member per user."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from realtime.backends import get_backend
from realtime.groups import GroupPattern
from realtime.settings import realtime_settings

if TYPE_CHECKING:
    from realtime.consumers import RealtimeConsumer


def presence_ttl() -> float:
    """How long a connection stays listed without its process renewing the lease."""
    return 3 * realtime_settings.HEARTBEAT_INTERVAL


def is_user_group(group: str) -> bool:
    return GroupPattern(realtime_settings.USER_GROUP).match(group) is not None


def tracks_presence(group: str) -> bool:
    if is_user_group(group):
        return False
    return any(fnmatchcase(group, p) for p in realtime_settings.PRESENCE_GROUPS)


def member_of(consumer: RealtimeConsumer) -> dict[str, Any] | None:
    from realtime.auth import user_summary

    summary = user_summary(consumer.user)
    if summary is not None:
        # Meta first: the id and username a client relies on cannot be overridden.
        summary = {**consumer.get_presence_meta(), **summary}
    return summary


def user_key(consumer: RealtimeConsumer) -> str:
    user = consumer.user
    return str(user.pk) if user is not None and user.is_authenticated else ""


async def join(consumer: RealtimeConsumer, group: str) -> None:
    from realtime.notify import publish

    member = member_of(consumer)
    first = await get_backend().presence_join(
        group, consumer.connection_id, user_key(consumer), member, presence_ttl()
    )
    if first:
        await publish(group, "rt.presence.join", member, history=False)


async def leave(consumer: RealtimeConsumer, group: str) -> None:
    member = await get_backend().presence_leave(group, consumer.connection_id)
    if member is not None:
        await leave_events(group, member)


async def leave_events(group: str, member: dict) -> None:
    from realtime.notify import publish

    await publish(group, "rt.presence.leave", member, history=False)


async def state(group: str) -> dict[str, Any]:
    """The members of ``group`` as sent in the ack of ``rt.presence``."""
    found = await get_backend().presence_state(group)
    return {
        "group": group,
        "members": found.members,
        "anonymous": found.anonymous,
        "connections": found.connections,
    }


async def amembers(group: str) -> list[dict[str, Any]]:
    """The users present in ``group``, across every process (async)."""
    return (await get_backend().presence_state(group)).members


def members(group: str) -> list[dict[str, Any]]:
    """The users present in ``group``, across every process (for views)."""
    from realtime.notify import run_sync

    return run_sync(amembers(group))
