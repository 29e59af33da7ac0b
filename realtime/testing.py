"""Helpers for users' own tests: an envelope-speaking communicator and a capture of
everything ``notify()`` publishes, like Django's ``mail.outbox``."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any, SupportsIndex

import orjson
from channels.testing import WebsocketCommunicator
from django.db import transaction

from realtime import publishing
from realtime.encoding import _default as _json_default
from realtime.settings import realtime_settings

# -- capture_notifications() ----------------------------------------------------------


class CapturedNotifications(list):
    """The list ``capture_notifications()`` yields.

    Items are dicts ``{"group", "type", "v", "seq", "data", "sent"}``. ``sent`` is
    False while the event waits for its transaction to commit (``notify()`` inside
    ``atomic()``, and every test under ``@pytest.mark.django_db``); an event whose
    transaction rolls back leaves the list.
    """

    def __init__(self) -> None:
        super().__init__()
        self._waiting: list[tuple[dict, _Deferred]] = []

    def _prune(self) -> None:
        still = []
        for entry, deferred in self._waiting:
            if entry["sent"]:
                continue
            if deferred.started or deferred.queued():
                still.append((entry, deferred))
            else:  # rolled back: Django dropped the on_commit callback
                for i, item in enumerate(list.__iter__(self)):
                    if item is entry:
                        list.__delitem__(self, i)
                        break
        self._waiting = still

    def __iter__(self) -> Iterator[dict]:
        self._prune()
        return super().__iter__()

    def __len__(self) -> int:
        self._prune()
        return super().__len__()

    def __getitem__(self, index: SupportsIndex | slice) -> Any:  # type: ignore[override]
        self._prune()
        return super().__getitem__(index)

    def __contains__(self, item: object) -> bool:
        self._prune()
        return super().__contains__(item)

    def __eq__(self, other: object) -> bool:
        self._prune()
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        self._prune()
        return super().__repr__()

    @property
    def sent(self) -> list[dict]:
        """The events that were published."""
        return [entry for entry in self if entry["sent"]]

    @property
    def waiting(self) -> list[dict]:
        """The events that wait for their transaction to commit."""
        return [entry for entry in self if not entry["sent"]]


_captures: list[CapturedNotifications] = []
_lock = threading.Lock()
# Entries of deferred sends that are running, in call order: the publish that
# follows fills them instead of adding new ones (it may run on another thread).
_running: list[list[dict]] = []
_local = threading.local()
_originals: dict[str, Callable[..., Any]] = {}


class _Deferred:
    """One ``on_commit`` send that ``capture_notifications()`` saw being queued."""

    def __init__(self, connection: Any, send: Callable[[], Any]) -> None:
        self.connection = connection
        self.send = send
        self.started = False
        self.calls: list[list[dict]] = []
        self.runner = self.run  # the one object handed to on_commit

    def queued(self) -> bool:
        return any(item[1] is self.runner for item in self.connection.run_on_commit)

    def run(self) -> None:
        self.started = True
        with _lock:
            _running.extend(self.calls)
        _local.batched = False
        sent = False
        try:
            self.send()
            sent = True
        finally:
            # Queued in a realtime.batch(): its publish fills the entries later.
            if not (sent and _local.batched):
                with _lock:
                    for entries in self.calls:
                        if entries in _running:
                            _running.remove(entries)


def _entry(group: str, type: str, v: Any, seq: Any, data: Any, sent: bool) -> dict:
    return {
        "group": group,
        "type": type,
        "v": v,
        "seq": seq,
        "data": data,
        "sent": sent,
    }


def _record(message: dict) -> None:
    """Called by notify's publishing code for every event it sent."""
    if not _captures and not _running:
        return
    with _lock:
        for i, entries in enumerate(_running):
            first = entries[0] if entries else None
            if first and (first["group"], first["type"]) == (
                message["group"],
                message["event"],
            ):
                del _running[i]
                for entry in entries:
                    entry["seq"] = message["seq"]
                    entry["sent"] = True
                return
    data = orjson.loads(message["text"]).get("data")
    for capture in list(_captures):
        capture.append(
            _entry(
                message["group"],
                message["event"],
                message["v"],
                message["seq"],
                data,
                True,
            )
        )


publishing.observers.append(_record)


def _probing_send_sync(
    group: str, type: str, data: Any, *, v: int | None, history: bool
) -> int | None:
    probe = getattr(_local, "probe", None)
    if probe is None:
        if publishing.current_batch() is not None:
            _local.batched = True
        return _originals["send_sync"](group, type, data, v=v, history=history)
    probe.append((group, type, v, data))
    return None


def _capturing_on_commit(send: Callable[[], Any], on_commit: bool | None) -> None:
    """Queue ``send`` like notify() does, and record what it will send right now."""
    real = _originals["_maybe_on_commit"]
    if on_commit is None:
        on_commit = realtime_settings.NOTIFY_ON_COMMIT
    connection = transaction.get_connection()
    if not (_captures and on_commit and connection.in_atomic_block):
        real(send, on_commit)
        return
    # Run the send with publishing switched off on this thread: it names its events.
    calls: list[tuple[str, str, Any, Any]] = []
    _local.probe = calls
    try:
        send()
    finally:
        _local.probe = None
    deferred = _Deferred(connection, send)
    for group, type, v, data in calls:
        clean = orjson.loads(orjson.dumps(data, default=_json_default))
        entries = []
        for capture in list(_captures):
            entry = _entry(group, type, v, None, clean, False)
            capture.append(entry)
            capture._waiting.append((entry, deferred))
            entries.append(entry)
        deferred.calls.append(entries)
    transaction.on_commit(deferred.runner)


def _install() -> None:
    # notify() and broadcast_model() look both names up on the module when they run.
    if "send_sync" not in _originals:
        _originals["send_sync"] = publishing.send_sync
        _originals["_maybe_on_commit"] = publishing._maybe_on_commit
    publishing.send_sync = _probing_send_sync  # type: ignore[assignment]
    publishing._maybe_on_commit = _capturing_on_commit  # type: ignore[assignment]


def _uninstall() -> None:
    publishing.send_sync = _originals["send_sync"]  # type: ignore[assignment]
    publishing._maybe_on_commit = _originals["_maybe_on_commit"]  # type: ignore[assignment]


@contextlib.contextmanager
def capture_notifications() -> Iterator[CapturedNotifications]:
    """Collect every event published in this process while the block runs, and
    every event queued to be sent when the current transaction commits.

    Each item is ``{"group", "type", "v", "seq", "data", "sent"}``; ``sent`` is
    False while the event waits for the commit (``seq`` is then None).
    """
    captured = CapturedNotifications()
    with _lock:
        if not _captures:
            _install()
        _captures.append(captured)
    try:
        yield captured
    finally:
        with _lock:
            # By identity: two captures holding equal events are still two captures.
            for i, capture in enumerate(_captures):
                if capture is captured:
                    del _captures[i]
                    break
            if not _captures:
                _uninstall()


# -- RealtimeCommunicator -------------------------------------------------------------

#: Protocol frames ``receive_event()`` steps over (kept in ``events`` all the same).
PROTOCOL_PREFIX = "rt."


class RealtimeCommunicator(WebsocketCommunicator):
    """A WebsocketCommunicator that speaks the realtime envelope.

    Frames that arrive while ``request()`` waits for its reply are queued in
    ``events``; ``receive_frame()`` and ``receive_event()`` hand them out first.
    """

    _ids = itertools.count(1)

    def __init__(
        self,
        application: Any,
        path: str = "/ws/",
        *,
        headers: list | None = None,
        user: Any = None,
        **kw: Any,
    ) -> None:
        headers = list(headers or [])
        super().__init__(application, path, headers=headers, **kw)
        if user is not None:
            self.scope["user"] = user
        self.welcome: dict | None = None
        self.events: list[dict] = []

    async def connect(self, timeout: float = 3) -> tuple[bool, Any]:
        """Connect and read ``rt.welcome`` (kept as ``self.welcome``)."""
        connected, code = await super().connect(timeout)
        if connected:
            frame = await self._read(timeout)
            if frame["type"] == "rt.welcome":
                self.welcome = frame
            else:
                self.events.append(frame)
        return connected, code

    async def _read(self, timeout: float) -> dict:
        return orjson.loads(await self.receive_from(timeout))

    async def send_frame(self, frame: dict) -> None:
        await self.send_to(text_data=orjson.dumps(frame).decode())

    async def receive_frame(self, timeout: float = 3) -> dict:
        """The next frame of any type: queued ones first, then from the socket."""
        if self.events:
            return self.events.pop(0)
        return await self._read(timeout)

    async def receive_event(
        self, type: str | None = None, *, group: str | None = None, timeout: float = 3
    ) -> dict:
        """The next event of ``type`` (any application event when None), optionally
        in ``group``, within ``timeout`` seconds.

        Protocol frames (``rt.presence.join``, ``rt.ping``, ...) and other events are
        stepped over and stay queued in ``events`` for later calls.
        """

        def wanted(frame: dict) -> bool:
            if type is None:
                if frame.get("type", "").startswith(PROTOCOL_PREFIX):
                    return False
            elif frame.get("type") != type:
                return False
            return group is None or frame.get("group") == group

        for i, frame in enumerate(self.events):
            if wanted(frame):
                return self.events.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = [frame.get("type") for frame in self.events]
                raise TimeoutError(
                    f"no {type or 'event'}{f' in {group!r}' if group else ''} within "
                    f"{timeout}s; queued frames: {seen}"
                )
            try:
                frame = await self._read(remaining)
            except TimeoutError:
                continue  # the message above says what did arrive
            if wanted(frame):
                return frame
            self.events.append(frame)

    async def receive_nothing(
        self, timeout: float = 0.1, interval: float = 0.01
    ) -> bool:
        """True when no frame is queued and none arrives within ``timeout``."""
        if self.events:
            return False
        return await super().receive_nothing(timeout, interval)

    async def request(
        self, type: str, data: Any = None, *, v: int | None = None, timeout: float = 3
    ) -> dict:
        """Send a frame with a fresh id and return the matching rt.ack / rt.error.

        Frames that arrive in between are queued in ``self.events``.
        """
        frame_id = f"t{next(self._ids)}"
        frame: dict[str, Any] = {"type": type, "id": frame_id, "data": data or {}}
        if v is not None:
            frame["v"] = v
        await self.send_frame(frame)
        while True:
            reply = await self._read(timeout)
            if reply.get("id") == frame_id and reply["type"] in ("rt.ack", "rt.error"):
                return reply
            self.events.append(reply)

    async def subscribe(self, group: str, **kw: Any) -> dict:
        """Send ``rt.subscribe`` and return its ``rt.ack`` (or ``rt.error``)."""
        return await self.request("rt.subscribe", {"group": group, **kw})


__all__ = ["CapturedNotifications", "RealtimeCommunicator", "capture_notifications"]
