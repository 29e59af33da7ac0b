"""The sync bridge: run a coroutine from sync code (views, signals, tasks, shells).

Connections and the in-memory layer belong to an event loop, so sync callers do not
start a loop per call: they hand the coroutine to a long-lived one, the server's own
for the in-memory layer (its hubs and memory backend live there), else a background
thread's, and wait for it within a bound.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any

from realtime.hub import server_loop
from realtime.settings import channel_layer_config, realtime_settings

_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None
_loop_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid() or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            _loop_pid = os.getpid()
            threading.Thread(
                target=_loop.run_forever, name="realtime-notify", daemon=True
            ).start()
        return _loop


def uses_process_local_layer() -> bool:
    """True unless the channel layer is channels-redis (reaching other processes)."""
    layer = channel_layer_config()
    return "channels_redis" not in layer.get("BACKEND", "")


def run_sync(coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
    """Run ``coro`` on a long-lived loop from sync code and return its result.

    Raises TimeoutError after ``timeout`` seconds (default: NOTIFY_TIMEOUT).
    """
    if timeout is None:
        timeout = realtime_settings.NOTIFY_TIMEOUT
    loop = None
    if uses_process_local_layer():
        # The in-memory layer and memory backend live on the server's loop.
        loop = server_loop()
    if loop is None:
        loop = _background_loop()
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        # Do not leave the send running behind the caller's back.
        future.cancel()
        raise TimeoutError(
            f"realtime: sending took longer than {timeout}s (is the channel layer "
            "reachable?)"
        ) from None
