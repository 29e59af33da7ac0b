"""broadcast_model(): push ``<prefix>.created/.updated/.deleted`` on model changes.

One call connects post_save and post_delete receivers and registers the three event
types (direction "server") with the model's serializer as their payload. The payload
is the serializer's representation taken when the signal fires, sent after commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import models
from django.db.models.signals import post_delete, post_save

from realtime.groups import validate_group_name
from realtime.history import keeps_history
from realtime.publishing import _maybe_on_commit, _refuse_running_loop, send_sync
from realtime.schema import EventSpec, registry

ACTIONS = ("created", "updated", "deleted")


def broadcast_model(
    model: type[models.Model],
    *,
    group: Callable[[Any], str],
    serializer: type,
    type_prefix: str | None = None,
    on_commit: bool | None = None,
) -> Callable[[], None]:
    """Broadcast saves and deletes of ``model`` to ``group(obj)``; return a function
    that disconnects the receivers again (for tests)."""
    prefix = type_prefix or model._meta.model_name
    origin = f"broadcast_model({model._meta.label}, {serializer.__qualname__})"
    for action in ACTIONS:
        registry.register(
            EventSpec(
                type=f"{prefix}.{action}",
                version=1,
                direction="server",
                serializer_class=serializer,
                description=f"A {model._meta.verbose_name} was {action}.",
                origin=origin,
            )
        )

    def send(instance: Any, action: str) -> None:
        _refuse_running_loop("broadcast_model", "anotify")
        target = validate_group_name(group(instance))
        # The representation is taken now, while the row (even a deleted one) is at
        # hand; it is the serializer's own output, so it is not validated again (a
        # ModelSerializer's unique and FK checks would query, or fail on an update).
        data = serializer(instance).data
        type = f"{prefix}.{action}"
        history = keeps_history(target)
        _maybe_on_commit(
            lambda: send_sync(target, type, data, v=1, history=history), on_commit
        )

    def saved(sender: Any, instance: Any, created: bool, raw: bool = False, **kw: Any):
        if not raw:  # loaddata: fixtures are not news
            send(instance, "created" if created else "updated")

    def deleted(sender: Any, instance: Any, **kw: Any) -> None:
        send(instance, "deleted")

    uid = f"realtime.broadcast:{model._meta.label}:{prefix}"
    post_save.connect(saved, sender=model, weak=False, dispatch_uid=uid)
    post_delete.connect(deleted, sender=model, weak=False, dispatch_uid=uid)

    def disconnect() -> None:
        post_save.disconnect(sender=model, dispatch_uid=uid)
        post_delete.disconnect(sender=model, dispatch_uid=uid)

    return disconnect
