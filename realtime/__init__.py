"""realtime: production-grade WebSockets for Django on Channels.

The public names are imported lazily so that ``import realtime`` is safe while
Django's apps are still loading.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "event": "realtime.schema",
    "upgrader": "realtime.schema",
    "downgrader": "realtime.schema",
    "registry": "realtime.schema",
    "handler": "realtime.consumers",
    "RealtimeConsumer": "realtime.consumers",
    "Message": "realtime.consumers",
    "notify": "realtime.publishing",
    "anotify": "realtime.publishing",
    "notify_user": "realtime.publishing",
    "anotify_user": "realtime.publishing",
    "batch": "realtime.publishing",
    "websocket_app": "realtime.asgi",
    "broadcast_model": "realtime.broadcast",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'realtime' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
