"""Presence: who is in a group, across processes, one member per user.

Every change is an event to every member of the group, so a connection may leave
presence groups (``rt.unsubscribe``) only PRESENCE_CHURN_RATE times a second on
average: toggling a subscription cannot flood a room with join/leave events.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from fnmatch import fnmatchcase
from typing import Any

from realtime.auth import user_summary
from realtime.backends import get_backend
from realtime.bridge import run_sync
from realtime.connection import Connection
from realtime.exceptions import RateLimited
from realtime.groups import is_personal_group
from realtime.hub import Hub
from realtime.publishing import publish
from realtime.settings import realtime_settings
from realtime.throttling import TokenBucket

logger = logging.getLogger(__name__)
# Each connection's presence-churn bucket, gone with the connection.
_churn: weakref.WeakKeyDictionary[Connection, TokenBucket] = weakref.WeakKeyDictionary()


def presence_ttl() -> float:
    """How long a connection stays listed without its process renewing the lease."""
    return 3 * realtime_settings.HEARTBEAT_INTERVAL


def tracks_presence(group: str) -> bool:
    if is_personal_group(group):
        return False
    return any(fnmatchcase(group, p) for p in realtime_settings.PRESENCE_GROUPS)


def member_of(consumer: Connection) -> dict[str, Any] | None:
    summary = user_summary(consumer.user)
    if summary is not None:
        # Meta first: the id and username a client relies on cannot be overridden.
        summary = {**consumer.get_presence_meta(), **summary}
    return summary


def user_key(consumer: Connection) -> str:
    user = consumer.user
    return str(user.pk) if user is not None and user.is_authenticated else ""


def check_churn(consumer: Connection, group: str) -> None:
    """Raise RateLimited if ``consumer`` leaving ``group``'s presence now would go
    over its budget of presence changes (PRESENCE_CHURN_RATE / _BURST).

    Only leaves are counted: a connection joins a group's presence once per
    subscription, so it can join no more often than it leaves (plus its
    MAX_SUBSCRIPTIONS first joins). Refused, the client stays subscribed and listed.
    """
    sub = consumer.subs.get(group)
    if sub is None or not sub.presence or not consumer.user.is_authenticated:
        return  # anonymous connections are counted, never announced: no events
    bucket = _churn.get(consumer)
    if bucket is None:
        bucket = _churn[consumer] = TokenBucket(
            realtime_settings.PRESENCE_CHURN_RATE,
            realtime_settings.PRESENCE_CHURN_BURST,
        )
    if not bucket.allow():
        raise RateLimited(
            f"leaving {group!r} now would change presence too often; try again "
            "in a second"
        )


async def join(consumer: Connection, group: str) -> None:
    member = member_of(consumer)
    first = await get_backend().presence_join(
        group, consumer.connection_id, user_key(consumer), member, presence_ttl()
    )
    if first:
        await publish(group, "rt.presence.join", member, history=False)


async def leave(consumer: Connection, group: str) -> None:
    member = await get_backend().presence_leave(group, consumer.connection_id)
    if member is not None:
        await leave_events(group, member)


async def leave_events(group: str, member: dict) -> None:
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
    return run_sync(amembers(group))


async def renew_leases(hub: Hub) -> None:
    """Every HEARTBEAT_INTERVAL, renew the leases of ``hub``'s connections and
    announce the members whose lease ran out (their process died)."""
    last_lease = time.monotonic()
    while True:
        # The hub's tick: a shorter interval set at run time applies within a second.
        interval = realtime_settings.HEARTBEAT_INTERVAL
        await asyncio.sleep(min(1.0, interval / 4, realtime_settings.AUTH_TIMEOUT / 4))
        now = time.monotonic()
        if now - last_lease < interval:
            continue
        last_lease = now
        try:
            await _renew(hub)
        except Exception:
            logger.exception("presence lease renewal failed")


async def _renew(hub: Hub) -> None:
    entries = [
        (group, consumer.connection_id)
        for consumer in hub.connections
        for group in consumer.presence_groups
    ]
    backend = get_backend()
    await backend.presence_refresh(entries, presence_ttl())
    for group, member in await backend.presence_sweep():
        await leave_events(group, member)
