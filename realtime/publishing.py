"""Publishing: ``notify()`` and its twins validate, number (history) and publish an
event to a group. The package exposes them as ``realtime.notify`` and friends.

The event is encoded to its JSON frame once, here; every process's hub writes that
text to its local sockets. From sync code on channels-redis, the history append and
the layer's group send run as one Lua script on a pooled sync connection (one round
trip, no event loop); other layers go through a long-lived event loop (the server's
own for the in-memory layer, else a background thread's) so connections are reused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction

from realtime import metrics
from realtime.backends import get_backend
from realtime.encoding import dumps
from realtime.exceptions import NotifyFailed, ValidationFailed
from realtime.fastpath import fast_path
from realtime.groups import user_group, validate_group_name
from realtime.history import keeps_history
from realtime.hub import dispatch_local, server_loop
from realtime.layers import get_layer, is_process_local
from realtime.schema import registry
from realtime.settings import channel_layer_config, realtime_settings

# The name operators filter on (docs/operations.md), kept from the public function.
logger = logging.getLogger("realtime.notify")

# Called with every message published by this process: ``capture_notifications``
# (realtime.testing) registers one, so publishing does not import the test helpers.
observers: list[Callable[[dict], None]] = []


def _observe(message: dict) -> None:
    for observer in observers:
        observer(message)


def prepare(type: str, data: Any, v: int | None) -> tuple[int, dict] | None:
    """Validate ``data`` against the registry; return (version, JSON-ready data).

    Returns None when the payload is invalid and INVALID_OUTGOING says "log".
    """
    spec = registry.get(type, v)
    try:
        clean = spec.validate(data, outgoing=True)
    except ValidationFailed as exc:
        if _invalid_policy() == "raise":
            raise
        logger.error(
            "notify(%s v%s) dropped: %s %s", type, spec.version, exc, exc.errors
        )
        return None
    return spec.version, clean


def _invalid_policy() -> str:
    policy = realtime_settings.INVALID_OUTGOING
    if policy is None:
        return "raise" if settings.DEBUG or _testing() else "log"
    return policy


def _testing() -> bool:
    return "PYTEST_CURRENT_TEST" in os.environ


def _frame_parts(group: str, type: str, data: Any, v: int | None) -> tuple[str, str]:
    """The frame split around its seq: ``prefix + str(seq) + suffix``."""
    head = (
        {"type": type, "v": v, "group": group} if v else {"type": type, "group": group}
    )
    prefix = dumps(head)[:-1].decode() + ',"seq":'
    suffix = ',"data":' + dumps(data if data is not None else {}).decode() + "}"
    return prefix, suffix


def _frame(group: str, type: str, data: Any, v: int | None) -> str:
    head = (
        {"type": type, "v": v, "group": group} if v else {"type": type, "group": group}
    )
    body = dumps(data if data is not None else {}).decode()
    return dumps(head)[:-1].decode() + ',"data":' + body + "}"


def _message(
    group: str,
    type: str,
    v: int | None,
    seq: int | None,
    text: str,
    epoch: str | None = None,
) -> dict:
    return {
        "type": "rt.event",
        "group": group,
        "event": type,
        "v": v,
        "seq": seq,
        "epoch": epoch,
        "text": text,
    }


async def publish(
    group: str,
    type: str,
    data: Any,
    *,
    v: int | None = None,
    history: bool,
    exclude: str | None = None,
) -> int | None:
    """Encode once and send to every process subscribed to ``group``; return the seq.

    ``exclude`` is a connection id that must not receive the event (its sender).
    """
    seq = epoch = None
    started = metrics.now()
    sender = fast_path(history=history) if exclude is None else None
    if sender is not None:
        # History and the layer's group send as one script: one round trip.
        if history:
            prefix, suffix = _frame_parts(group, type, data, v)
            seq = await sender.asend(group, type, v, prefix=prefix, suffix=suffix)
            text = f"{prefix}{seq}{suffix}"
        else:
            text = _frame(group, type, data, v)
            seq = await sender.asend(group, type, v, text=text)
        _observe(_message(group, type, v, seq, text))
        metrics.published(type, started)
        return seq
    if history:
        prefix, suffix = _frame_parts(group, type, data, v)
        seq, epoch = await get_backend().append(group, prefix, suffix)
        text = f"{prefix}{seq}{suffix}"
    else:
        text = _frame(group, type, data, v)
    message = _message(group, type, v, seq, text, epoch)
    if exclude is not None:
        message["exclude"] = exclude
    _observe(message)
    layer = get_layer()
    if layer is not None and not is_process_local(layer):
        await layer.group_send(group, message)
    else:
        await dispatch_local(message)
    metrics.published(type, started)
    return seq


def _send_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (OSError, TimeoutError)
    try:
        from redis.exceptions import RedisError
    except ImportError:  # the embedded default runs without redis-py
        return errors
    return (*errors, RedisError)


def _failed(group: str, type: str, error: BaseException) -> None:
    """Apply REALTIME["NOTIFY_FAILURE"] to a publish that did not go through."""
    if isinstance(error, TimeoutError):
        why = (
            f"no answer within {realtime_settings.NOTIFY_TIMEOUT}s "
            "(is the channel layer / Redis reachable?)"
        )
    else:
        why = f"{error.__class__.__name__}: {error}"
    reason = f"notify({group!r}, {type!r}) failed: {why}"
    if realtime_settings.NOTIFY_FAILURE == "log":
        logger.warning("%s (REALTIME['NOTIFY_FAILURE'] is 'log')", reason)
        return
    raise NotifyFailed(reason) from error


async def _bounded_publish(group: str, type: str, data: Any, **kw: Any) -> int | None:
    """``publish`` within NOTIFY_TIMEOUT; failures follow NOTIFY_FAILURE."""
    try:
        async with asyncio.timeout(realtime_settings.NOTIFY_TIMEOUT):
            return await publish(group, type, data, **kw)
    except _send_errors() as error:
        _failed(group, type, error)
        return None


async def anotify(
    group: str,
    type: str,
    data: Any = None,
    *,
    v: int | None = None,
    history: bool | None = None,
) -> int | None:
    """Send event ``type`` to ``group`` from async code; return its seq (or None)."""
    validate_group_name(group)
    prepared = prepare(type, data, v)
    if prepared is None:
        return None
    version, clean = prepared
    if history is None:
        history = keeps_history(group)
    return await _bounded_publish(group, type, clean, v=version, history=history)


def notify(
    group: str,
    type: str,
    data: Any = None,
    *,
    v: int | None = None,
    on_commit: bool | None = None,
    history: bool | None = None,
) -> None:
    """Send event ``type`` to ``group`` from sync code (views, signals, tasks).

    Inside ``transaction.atomic()`` the event leaves after commit, and never after a
    rollback, unless ``on_commit=False`` (default: REALTIME["NOTIFY_ON_COMMIT"]).
    """
    _refuse_running_loop("notify", "anotify")
    validate_group_name(group)
    prepared = prepare(type, data, v)
    if prepared is None:
        return
    version, clean = prepared
    if history is None:
        history = keeps_history(group)
    _maybe_on_commit(
        lambda: send_sync(group, type, clean, v=version, history=history), on_commit
    )


def _maybe_on_commit(send: Callable[[], Any], on_commit: bool | None) -> None:
    if on_commit is None:
        on_commit = realtime_settings.NOTIFY_ON_COMMIT
    if on_commit and transaction.get_connection().in_atomic_block:
        transaction.on_commit(send)
    else:
        send()


def _refuse_running_loop(name: str, async_name: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"realtime.{name}() was called from async code (a running event loop); "
        f"use `await realtime.{async_name}(...)` instead"
    )


def notify_user(
    user: Any,
    type: str,
    data: Any = None,
    *,
    v: int | None = None,
    persist: bool = False,
    on_commit: bool | None = None,
) -> Any:
    """Send to every connection of ``user`` (a user or a pk); with ``persist=True``
    store it in the inbox first and return the ``Notification``."""
    _refuse_running_loop("notify_user", "anotify_user")
    group = validate_group_name(user_group(user))
    prepared = prepare(type, data, v)
    if prepared is None:
        return None
    version, clean = prepared
    stored = None
    if persist:
        # Imported here: the inbox is an optional app, whose model can be imported
        # only when "realtime.inbox" is in INSTALLED_APPS.
        from realtime.inbox.store import store

        # Inside atomic() the row commits with the caller's transaction and the push
        # waits for that commit, so both happen or neither does.
        stored = store(user, type, clean, version)
    history = keeps_history(group)
    _maybe_on_commit(
        lambda: send_sync(group, type, clean, v=version, history=history), on_commit
    )
    return stored


async def anotify_user(
    user: Any,
    type: str,
    data: Any = None,
    *,
    v: int | None = None,
    persist: bool = False,
) -> Any:
    """Async twin of ``notify_user``."""
    group = validate_group_name(user_group(user))
    prepared = prepare(type, data, v)
    if prepared is None:
        return None
    version, clean = prepared
    stored = None
    if persist:
        # Optional app: see notify_user.
        from realtime.inbox.store import store

        stored = await database_sync_to_async(store)(user, type, clean, version)
    await _bounded_publish(group, type, clean, v=version, history=keeps_history(group))
    return stored


# -- sync sending ---------------------------------------------------------------------


def send_sync(
    group: str, type: str, data: Any, *, v: int | None, history: bool
) -> int | None:
    """Publish validated ``data`` from sync code; return the seq (or None).

    Bounded by REALTIME["NOTIFY_TIMEOUT"]: a dead Redis makes this raise
    ``NotifyFailed`` (or log, per NOTIFY_FAILURE) instead of hanging the request.
    """
    started = metrics.now()
    try:
        sender = fast_path(history=history)
        if sender is None:
            return run_sync(publish(group, type, data, v=v, history=history))
        if history:
            prefix, suffix = _frame_parts(group, type, data, v)
            seq = sender.send(group, type, v, prefix=prefix, suffix=suffix)
            text = f"{prefix}{seq}{suffix}"
        else:
            text = _frame(group, type, data, v)
            seq = sender.send(group, type, v, text=text)
    except _send_errors() as error:
        _failed(group, type, error)
        return None
    _observe(_message(group, type, v, seq, text))
    metrics.published(type, started)
    return seq


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


def _uses_process_local_layer() -> bool:
    layer = channel_layer_config()
    return "channels_redis" not in layer.get("BACKEND", "")


def run_sync(coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
    """Run ``coro`` on a long-lived loop from sync code and return its result.

    Raises TimeoutError after ``timeout`` seconds (default: NOTIFY_TIMEOUT).
    """
    if timeout is None:
        timeout = realtime_settings.NOTIFY_TIMEOUT
    loop = None
    if _uses_process_local_layer():
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
