"""Every connection's deadlines (heartbeat pings, the auth timeout) from one task.

The connections of a hub are ticked in turn about once a second, so an idle
connection costs no task and no timer of its own; each decides in ``tick`` what is
due.
"""

from __future__ import annotations

import asyncio
import time

from realtime.hub import Hub
from realtime.settings import realtime_settings


async def tick_connections(hub: Hub) -> None:
    """Heartbeats and auth deadlines for every connection of ``hub``."""
    while True:
        interval = realtime_settings.HEARTBEAT_INTERVAL
        tick = min(1.0, interval / 4, realtime_settings.AUTH_TIMEOUT / 4)
        await asyncio.sleep(tick)
        now = time.monotonic()
        for consumer in tuple(hub.connections):
            try:
                consumer.tick(now)
            except Exception:
                consumer.log.exception("tick of %s failed", consumer.connection_id)
