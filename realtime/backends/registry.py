"""The process registry: each hub announces itself with a heartbeat that expires.

Every ``PROCESS_HEARTBEAT`` seconds a hub writes what it serves (connections per
consumer class, local sockets per group) under ``<KEY_PREFIX>:proc:<id>`` with a TTL
of three beats, so ``manage.py realtime_status`` sees every live process and a
crashed one disappears on its own. A process appears once its hub started (on its
first connection).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any, Protocol

from realtime.backends import get_backend
from realtime.settings import realtime_settings


class Served(Protocol):
    """What a process serves (the hub): its connections and groups."""

    @property
    def connections(self) -> Collection[Any]: ...
    @property
    def groups(self) -> Mapping[str, Collection[Any]]: ...


logger = logging.getLogger(__name__)
MAX_GROUPS = 1000  # per heartbeat: the largest groups, so one key stays small
PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
STARTED = time.time()


def process_info(hub: Served) -> dict[str, Any]:
    """What this process serves right now."""
    connections = tuple(hub.connections)
    groups = sorted(
        ((group, len(members)) for group, members in tuple(hub.groups.items())),
        key=lambda item: -item[1],
    )
    return {
        "id": PROCESS_ID,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": STARTED,
        "beat": time.time(),
        "connections": len(connections),
        "authenticated": sum(
            1 for c in connections if getattr(c.user, "is_authenticated", False)
        ),
        "consumers": dict(Counter(type(c).__qualname__ for c in connections)),
        "groups": dict(groups[:MAX_GROUPS]),
        "groups_total": len(groups),
    }


async def heartbeat(hub: Served) -> None:
    """Register this process until the hub stops (runs as one of its tasks)."""
    try:
        while True:
            interval = realtime_settings.PROCESS_HEARTBEAT
            try:
                await get_backend().register_process(
                    PROCESS_ID, process_info(hub), 3 * interval
                )
            except Exception:
                logger.warning("process heartbeat failed", exc_info=True)
            await asyncio.sleep(interval)
    except asyncio.CancelledError:
        try:
            await asyncio.wait_for(get_backend().unregister_process(PROCESS_ID), 1)
        except Exception:
            pass  # the key expires by itself
        raise
