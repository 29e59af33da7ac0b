"""Writing to the inbox (``notify_user(..., persist=True)`` calls ``store``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from django.apps import apps

from realtime.encoding import dumps

if TYPE_CHECKING:
    from realtime.inbox.models import Notification


def store(user: Any, type: str, data: Any, version: int) -> Notification:
    """Store an event for ``user`` (a user or a pk) and return the row."""
    # The model is looked up when called, so that the app's start-up (which hands
    # this function to notify_user) can import this module before the models load.
    model = apps.get_model("realtime_inbox", "Notification")
    # Stored as the JSON the live push carries (dates as ISO strings, Decimals as
    # strings), so the API returns exactly what a connected client received.
    plain = orjson.loads(dumps(data if data is not None else {}))
    return model.objects.create(
        user_id=getattr(user, "pk", user), type=type, version=version, data=plain
    )
