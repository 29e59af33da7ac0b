"""Backends for history and presence, chosen by REALTIME["BACKEND"]."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from django.core.signals import setting_changed

from realtime.backends.base import BaseBackend
from realtime.backends.memory import MemoryBackend
from realtime.backends.redis import RedisBackend
from realtime.settings import channel_layer_config, realtime_settings

_shared: BaseBackend | None = None
_per_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def backend_class() -> type[BaseBackend]:
    if realtime_settings.BACKEND is not None:
        return realtime_settings.BACKEND
    layer = channel_layer_config()
    if "channels_redis" in layer.get("BACKEND", ""):
        return RedisBackend
    return MemoryBackend


def get_backend() -> BaseBackend:
    """Return this process's backend (Redis clients are bound to one event loop)."""
    global _shared
    cls = backend_class()
    if getattr(cls, "shared_across_loops", False):
        if _shared is None or type(_shared) is not cls:
            _shared = cls()
        return _shared
    loop = asyncio.get_running_loop()
    backend = _per_loop.get(loop)
    if backend is None or type(backend) is not cls:
        backend = _per_loop[loop] = cls()
    return backend


def reset() -> None:
    """Forget backend instances (settings changed, or between tests)."""
    global _shared
    _shared = None
    _per_loop.clear()


def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    # Like Channels' layer manager: the backends follow the settings they read.
    if setting in ("REALTIME", "CHANNEL_LAYERS", "DEBUG", "ALLOWED_HOSTS"):
        reset()


setting_changed.connect(_reset_on_change)
