"""An asyncio client of the realtime protocol, for scripts, services and tests.

::

    from realtime.client import RealtimeClient, RecoveryFailed

    async with RealtimeClient("wss://example.com/ws/", token=API_TOKEN) as client:
        sub = await client.subscribe("room.42")
        async for event in sub:
            print(event.type, event.data)

Needs the ``websockets`` package (``pip install 'django-realtime-events[client]'``), and
neither Django settings nor a configured project: nothing here imports Django.
See docs/client.md.
"""

from __future__ import annotations

from realtime.client.connection import RealtimeClient, backoff_delay
from realtime.client.errors import ClientClosed, ClientError, RecoveryFailed
from realtime.client.events import Event, Subscription
from realtime.client.sync import SyncClient, SyncSubscription

__all__ = [
    "ClientClosed",
    "ClientError",
    "Event",
    "RealtimeClient",
    "RecoveryFailed",
    "Subscription",
    "SyncClient",
    "SyncSubscription",
    "backoff_delay",
]
