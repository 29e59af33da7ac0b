"""System checks for dangerous or broken configurations."""

from __future__ import annotations

import difflib
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from realtime.consumers import RealtimeConsumer
from realtime.groups import patterns_overlap
from realtime.schema import registry
from realtime.settings import DEFAULTS, IMPORT_STRINGS, realtime_settings

T = TypeVar("T")


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list:
    problems: list = []
    user = getattr(settings, "REALTIME", {}) or {}
    if not isinstance(user, dict):
        return [Error("REALTIME must be a dict.", id="realtime.E001")]
    for key in user:
        if key not in DEFAULTS:
            close = difflib.get_close_matches(key, DEFAULTS, n=1)
            hint = f"Did you mean {close[0]!r}?" if close else "See docs/settings.md."
            problems.append(
                Error(f"Unknown REALTIME key {key!r}.", hint=hint, id="realtime.E001")
            )
    for key in IMPORT_STRINGS & set(user):
        try:
            getattr(realtime_settings, key)
        except Exception as exc:
            problems.append(Error(str(exc), id="realtime.E002"))
    if not getattr(settings, "ASGI_APPLICATION", None):
        problems.append(
            Error(
                "ASGI_APPLICATION is not set.",
                hint="Set ASGI_APPLICATION = 'mysite.asgi.application' (see README).",
                id="realtime.E003",
            )
        )
    layer = (
        settings.CHANNEL_LAYERS.get(user.get("CHANNEL_LAYER", "default"))
        if hasattr(settings, "CHANNEL_LAYERS")
        else None
    )
    if layer is None:
        problems.append(
            Warning(
                "No channel layer is configured: events reach only this process.",
                hint="Set CHANNEL_LAYERS (InMemoryChannelLayer for one process, "
                "channels_redis for many).",
                id="realtime.W001",
            )
        )
    elif "InMemoryChannelLayer" in layer.get("BACKEND", "") and not settings.DEBUG:
        problems.append(
            Warning(
                "The in-memory channel layer is used with DEBUG=False: events sent from "
                "one process never reach clients connected to another.",
                hint="Use channels_redis.core.RedisChannelLayer in production.",
                id="realtime.W002",
            )
        )
    origins = realtime_settings.ALLOWED_ORIGINS
    if origins == "*" or (isinstance(origins, (list, tuple)) and "*" in origins):
        problems.append(
            Warning(
                "REALTIME['ALLOWED_ORIGINS'] allows every origin: any web page can open "
                "a WebSocket with your users' cookies (cross-site WebSocket hijacking).",
                hint="List your sites' origins, e.g. ['https://app.example.com'].",
                id="realtime.W003",
            )
        )
    if layer and "channels_redis" in layer.get("BACKEND", ""):
        try:
            major = int(version("redis").split(".")[0])
        except (PackageNotFoundError, ValueError):
            major = 0
        if major >= 8:
            problems.append(
                Warning(
                    f"redis-py {version('redis')} breaks channels-redis 4.3 (socket "
                    "timeouts kill idle consumers).",
                    hint="pip install 'redis<8'",
                    id="realtime.W004",
                )
            )
    return problems


@register(Tags.compatibility)
def check_registry(app_configs: Any = None, **kwargs: Any) -> list:
    problems = [
        Error(problem, hint=getattr(problem, "hint", None), id="realtime.E004")
        for problem in registry.check()
    ]
    for consumer in _subclasses(RealtimeConsumer):
        for type_ in consumer._handlers:
            origin = f"{consumer.__module__}.{consumer.__qualname__}"
            if type_ not in registry:
                problems.append(
                    Error(
                        f"{origin} handles {type_!r}, which is not a declared event.",
                        hint="Declare it with @realtime.event(...) in an events.py.",
                        id="realtime.E005",
                    )
                )
            elif not any(
                spec.accepts_from_client() for spec in registry.events[type_].values()
            ):
                problems.append(
                    Error(
                        f"{origin} handles {type_!r}, which clients may not send.",
                        hint="Declare it with direction='client' or 'both'.",
                        id="realtime.E006",
                    )
                )
    return problems


@register(Tags.security)
def check_subscription_patterns(app_configs: Any = None, **kwargs: Any) -> list:
    """Subscription patterns that could also match personal groups."""
    personal = realtime_settings.USER_GROUP
    problems: list = []
    for consumer in _subclasses(RealtimeConsumer):
        for pattern in vars(consumer).get("subscriptions", {}):
            if patterns_overlap(pattern, personal):
                origin = f"{consumer.__module__}.{consumer.__qualname__}"
                problems.append(
                    Warning(
                        f"{origin}.subscriptions pattern {pattern!r} also matches "
                        f"personal groups ({personal!r}); clients are refused those "
                        "groups whatever the pattern says.",
                        hint="Give the pattern a fixed prefix of its own, e.g. "
                        "'feed.{name}', so that it names only the groups you mean.",
                        id="realtime.W005",
                    )
                )
    return problems


def _subclasses(cls: type[T]) -> list[type[T]]:
    found: list[type[T]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found
