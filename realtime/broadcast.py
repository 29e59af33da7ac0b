"""broadcast_model(): push ``<prefix>.created/.updated/.deleted`` on model changes.

One call connects post_save and post_delete receivers and registers the three event
types (direction "server") with the model's serializer as their payload. The payload
is the serializer's representation taken when the signal fires, sent after commit to
every group ``group(obj)`` names: one group, or several ("staff see every order, the
customer sees their own": ``group=lambda o: ["orders.staff", f"user.{o.customer_id}"]``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from django.db import models
from django.db.models.signals import post_delete, post_save
from rest_framework.serializers import BaseSerializer

from realtime.exceptions import BadEnvelope, RealtimeConfigError
from realtime.groups import validate_group_name
from realtime.publishing import refuse_running_loop, send_validated
from realtime.schema import EventSpec, registry

ACTIONS = ("created", "updated", "deleted")


#: What ``group`` may be: a group name, or a function of the instance returning one
#: group name or an iterable of them.
GroupSpec = str | Callable[[Any], str | Iterable[str]]


def broadcast_model(
    model: type[models.Model],
    *,
    group: GroupSpec,
    serializer: type[BaseSerializer],
    type_prefix: str | None = None,
    on_commit: bool | None = None,
) -> Callable[[], None]:
    """Broadcast saves and deletes of ``model`` to ``group(obj)`` (one group name or
    several); return a function that disconnects the receivers again (for tests).

    Arguments are checked here, at registration, so that a mistake fails at start-up
    and not inside every ``post_save`` after the row is written.
    """
    _check_arguments(model, group, serializer, on_commit)
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

    def groups_of(instance: Any) -> list[str]:
        found = group(instance) if callable(group) else group
        names = [found] if isinstance(found, str) else found
        try:
            names = list(dict.fromkeys(names))  # once each, in order
        except TypeError:
            raise RealtimeConfigError(
                f"{origin}: group must return a group name or an iterable of them, "
                f"got {type(found).__name__}"
            ) from None
        for name in names:
            if not isinstance(name, str):
                raise RealtimeConfigError(
                    f"{origin}: group returned {type(name).__name__} {name!r:.100} "
                    "among its groups; expected group names (str)"
                )
            try:
                validate_group_name(name)
            except BadEnvelope as error:
                raise RealtimeConfigError(f"{origin}: {error.detail}") from None
        return names

    def send(instance: Any, action: str) -> None:
        refuse_running_loop("broadcast_model", "anotify")
        targets = groups_of(instance)
        # The representation is taken now, while the row (even a deleted one) is at
        # hand; it is the serializer's own output, so it is not validated again (a
        # ModelSerializer's unique and FK checks would query, or fail on an update).
        data = serializer(instance).data
        type = f"{prefix}.{action}"
        for target in targets:
            send_validated(target, type, data, v=1, on_commit=on_commit)

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


def _check_arguments(model: Any, group: Any, serializer: Any, on_commit: Any) -> None:
    where = "broadcast_model()"
    if not (isinstance(model, type) and issubclass(model, models.Model)):
        raise RealtimeConfigError(
            f"{where}: model must be a Django model class, got {model!r:.100}"
        )
    if not (isinstance(serializer, type) and issubclass(serializer, BaseSerializer)):
        raise RealtimeConfigError(
            f"{where}: serializer must be a DRF serializer class, got "
            f"{serializer!r:.100}"
        )
    if isinstance(group, str):
        try:
            validate_group_name(group)
        except BadEnvelope as error:
            raise RealtimeConfigError(f"{where}: {error.detail}") from None
    elif callable(group):
        try:
            inspect.signature(group).bind(None)
        except TypeError:
            raise RealtimeConfigError(
                f"{where}: group must take one argument (the instance): {group!r:.100}"
            ) from None
        except ValueError:
            pass  # no signature to inspect (some builtins): called as is
    else:
        raise RealtimeConfigError(
            f"{where}: group must be a group name or a function of the instance "
            f"returning one or several, got {type(group).__name__}"
        )
    if on_commit not in (None, True, False):
        raise RealtimeConfigError(
            f"{where}: on_commit must be True, False or None, got {on_commit!r:.100}"
        )
