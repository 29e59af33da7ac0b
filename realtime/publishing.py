"""Publishing: ``notify()`` and its twins validate, number (history) and publish an
event to a group. The package exposes them as ``realtime.notify`` and friends.

Every publisher takes one pipeline: ``prepare`` validates the data against the
registry, ``frames.EventFrame`` encodes the frame once, and the broker that
``broker.get_broker()`` picks for the configured layer numbers, stores and sends it
(docs/architecture.md, "The path of an event"). From sync code on channels-redis that
is one Lua script on a pooled sync connection (one round trip, no event loop); other
layers go through the sync bridge's long-lived event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction

from realtime import metrics
from realtime.broker import get_broker
from realtime.exceptions import NotifyFailed, RealtimeConfigError, ValidationFailed
from realtime.frames import EventFrame
from realtime.groups import user_group, validate_group_name
from realtime.history import keeps_history
from realtime.layers import unreachable
from realtime.schema import registry
from realtime.settings import realtime_settings

# The name operators filter on (docs/operations.md), kept from the public function.
logger = logging.getLogger("realtime.notify")

# Called with every message published by this process: ``capture_notifications``
# (realtime.testing) registers one, so publishing does not import the test helpers.
observers: list[Callable[[dict], None]] = []

#: Stores a notification for ``notify_user(persist=True)``: ``(user, type, data,
#: version) -> row``. The inbox app sets it when it starts (``InboxConfig.ready``),
#: so publishing never imports the optional app.
Persister = Callable[[Any, str, Any, int], Any]
_persister: Persister | None = None


def set_persister(persister: Persister | None) -> None:
    """Store ``notify_user(persist=True)`` notifications with ``persister``."""
    global _persister
    _persister = persister


def _persist() -> Persister:
    if _persister is None:
        raise RealtimeConfigError(
            "notify_user(persist=True) stores the notification in the inbox: add "
            "'realtime.inbox' to INSTALLED_APPS and run `manage.py migrate "
            "realtime_inbox`"
        )
    return _persister


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
    started = metrics.now()
    frame = EventFrame(group, type, data, v)
    broker = get_broker(history=history, exclude=exclude is not None)
    seq = await broker.publish(frame, history=history, exclude=exclude)
    _published(frame, seq, started)
    return seq


def _published(frame: EventFrame, seq: int | None, started: float) -> None:
    if observers:
        _observe(frame.message(seq))
    metrics.published(frame.type, started)


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
    except unreachable() as error:
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
    refuse_running_loop("notify", "anotify")
    validate_group_name(group)
    prepared = prepare(type, data, v)
    if prepared is None:
        return
    version, clean = prepared
    send_validated(group, type, clean, v=version, on_commit=on_commit, history=history)


def send_validated(
    group: str,
    type: str,
    data: Any,
    *,
    v: int | None,
    on_commit: bool | None = None,
    history: bool | None = None,
) -> None:
    """Publish ``data`` that is already valid for ``type`` from sync code, after
    the transaction commits unless ``on_commit=False`` (see ``notify``)."""
    if history is None:
        history = keeps_history(group)

    def send() -> None:
        send_sync(group, type, data, v=v, history=history)

    queue = current_batch()
    # Both looked up when they run: capture_notifications() swaps them.
    _maybe_on_commit(send if queue is None else queue.within(send), on_commit)


def _maybe_on_commit(send: Callable[[], Any], on_commit: bool | None) -> None:
    if on_commit is None:
        on_commit = realtime_settings.NOTIFY_ON_COMMIT
    if on_commit and transaction.get_connection().in_atomic_block:
        transaction.on_commit(send)
    else:
        send()


def refuse_running_loop(name: str, async_name: str) -> None:
    """Raise RuntimeError if sync ``realtime.<name>()`` runs inside an event loop."""
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
    refuse_running_loop("notify_user", "anotify_user")
    group = validate_group_name(user_group(user))
    prepared = prepare(type, data, v)
    if prepared is None:
        return None
    version, clean = prepared
    stored = None
    if persist:
        # Inside atomic() the row commits with the caller's transaction and the push
        # waits for that commit, so both happen or neither does.
        stored = _persist()(user, type, clean, version)
    send_validated(group, type, clean, v=version, on_commit=on_commit)
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
        stored = await database_sync_to_async(_persist())(user, type, clean, version)
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
    frame = EventFrame(group, type, data, v)
    queue = current_batch()
    if queue is not None:
        queue.add(frame, history)
        return None
    started = metrics.now()
    try:
        seq = get_broker(history=history).publish_sync(frame, history=history)
    except unreachable() as error:
        _failed(group, type, error)
        return None
    _published(frame, seq, started)
    return seq


# -- batches ---------------------------------------------------------------------------

_batching = threading.local()


def current_batch() -> Batch | None:
    """The batch that sync sends on this thread join, if any."""
    return getattr(_batching, "batch", None)


class Batch:
    """The events sync ``notify()`` calls queued inside ``batch()``, in call order."""

    def __init__(self) -> None:
        self.frames: list[EventFrame] = []
        self.history: list[bool] = []
        # Sends may wait for a transaction that commits after the block: they join
        # this batch when they run, and one on_commit callback registered behind
        # them (when the block ends) sends what they queued.
        self.deferred = False

    def add(self, frame: EventFrame, history: bool) -> None:
        self.frames.append(frame)
        self.history.append(history)

    def within(self, send: Callable[[], Any]) -> Callable[[], None]:
        """``send``, queueing into this batch whenever it runs (now, or after a
        commit that may come once the block has ended)."""
        self.deferred = True

        def joined() -> None:
            outer = current_batch()
            _batching.batch = self
            try:
                send()
            finally:
                _batching.batch = outer

        return joined

    def flush(self) -> None:
        """Send every queued event, in order; failures follow NOTIFY_FAILURE."""
        frames, history = self.frames, self.history
        self.frames, self.history = [], []
        failures: list[tuple[int, EventFrame, BaseException]] = []
        index = 0
        while index < len(frames):
            # Runs of events that take the same broker go out together.
            broker = get_broker(history=history[index])
            end = index + 1
            while end < len(frames) and get_broker(history=history[end]) is broker:
                end += 1
            started = metrics.now()
            results = broker.publish_many_sync(
                frames[index:end], history=history[index:end]
            )
            for offset, result in enumerate(results):
                frame = frames[index + offset]
                if isinstance(result, BaseException):
                    failures.append((index + offset, frame, result))
                else:
                    _published(frame, result, started)
            index = end
        if failures:
            _batch_failed(failures, len(frames))


def _batch_failed(
    failures: list[tuple[int, EventFrame, BaseException]], total: int
) -> None:
    """Name each event of a batch that was not sent, per NOTIFY_FAILURE."""
    listed = [
        (index, frame.group, frame.type, f"{error.__class__.__name__}: {error}")
        for index, frame, error in failures
    ]
    if realtime_settings.NOTIFY_FAILURE == "log":
        for index, group, type, why in listed:
            logger.warning(
                "batch: #%d notify(%r, %r) failed: %s (REALTIME['NOTIFY_FAILURE'] "
                "is 'log')",
                index,
                group,
                type,
                why,
            )
        return
    shown = "; ".join(
        f"#{index} notify({group!r}, {type!r}): {why}"
        for index, group, type, why in listed[:10]
    )
    more = f"; and {len(listed) - 10} more (see .failures)" if len(listed) > 10 else ""
    raise NotifyFailed(
        f"{len(failures)} of {total} events of a batch failed: {shown}{more}",
        failures=listed,
    )


@contextlib.contextmanager
def batch() -> Iterator[None]:
    """Queue sync ``notify()`` calls made in the block and send them together
    when it ends: in call order, pipelined on channels-redis."""
    refuse_running_loop("batch", "anotify")
    if current_batch() is not None:
        yield  # an inner block joins the outer batch
        return
    queue = _batching.batch = Batch()
    try:
        yield
    except BaseException:
        _batching.batch = None
        try:
            _close(queue)
        except NotifyFailed as failed:
            # The block's own error goes on; the events that failed are said here.
            for index, group, type, why in failed.failures:
                logger.error(
                    "batch: #%d notify(%r, %r) failed: %s", index, group, type, why
                )
        raise
    _batching.batch = None
    _close(queue)


def _close(queue: Batch) -> None:
    if queue.deferred and transaction.get_connection().in_atomic_block:
        transaction.on_commit(queue.flush)
    queue.flush()
