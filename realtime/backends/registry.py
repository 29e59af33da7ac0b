"""The process registry: what each process announces in its heartbeat.

``process_info`` is what realtime.processes writes every ``PROCESS_HEARTBEAT``
seconds under ``<KEY_PREFIX>:proc:<id>`` (connections per consumer class, local
sockets per group), read back by ``manage.py realtime_status``. A process appears
once its hub started (on its first connection).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any, Protocol


class Served(Protocol):
    """What a process serves (the hub): its connections and groups."""

    @property
    def connections(self) -> Collection[Any]: ...
    @property
    def groups(self) -> Mapping[str, Collection[Any]]: ...


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
