"""Writing to the inbox (``notify_user(..., persist=True)`` calls ``store``)."""

from __future__ import annotations

from typing import Any

import orjson

from realtime.encoding import dumps
from realtime.inbox.models import Notification


def store(user: Any, type: str, data: Any, version: int) -> Notification:
    """Store an event for ``user`` (a user or a pk) and return the row."""
    # Stored as the JSON the live push carries (dates as ISO strings, Decimals as
    # strings), so the API returns exactly what a connected client received.
    plain = orjson.loads(dumps(data if data is not None else {}))
    return Notification.objects.create(
        user_id=getattr(user, "pk", user), type=type, version=version, data=plain
    )
