"""Helpers for users' own tests: an envelope-speaking communicator and a capture of
everything ``notify()`` publishes."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any

import orjson
from channels.testing import WebsocketCommunicator

from realtime import publishing

_captures: list[list[dict]] = []


def _record(message: dict) -> None:
    for capture in _captures:
        frame = orjson.loads(message["text"])
        capture.append(
            {
                "group": message["group"],
                "type": message["event"],
                "v": message["v"],
                "seq": message["seq"],
                "data": frame.get("data"),
            }
        )


publishing.observers.append(_record)


@contextlib.contextmanager
def capture_notifications() -> Iterator[list[dict]]:
    """Collect every event published in this process while the block runs.

    Each item is ``{"group", "type", "v", "seq", "data"}``.
    """
    captured: list[dict] = []
    _captures.append(captured)
    try:
        yield captured
    finally:
        # By identity: two captures holding equal events are still two captures.
        for i, capture in enumerate(_captures):
            if capture is captured:
                del _captures[i]
                break


class RealtimeCommunicator(WebsocketCommunicator):
    """A WebsocketCommunicator that speaks the realtime envelope."""

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

    async def connect(self, timeout: float = 3) -> tuple[bool, Any]:
        """Connect and read ``rt.welcome`` (kept as ``self.welcome``)."""
        connected, code = await super().connect(timeout)
        if connected:
            frame = await self.receive_frame(timeout)
            if frame["type"] == "rt.welcome":
                self.welcome = frame
            else:
                self._early = frame
        return connected, code

    async def send_frame(self, frame: dict) -> None:
        await self.send_to(text_data=orjson.dumps(frame).decode())

    async def receive_frame(self, timeout: float = 3) -> dict:
        early = self.__dict__.pop("_early", None)
        if early is not None:
            return early
        return orjson.loads(await self.receive_from(timeout))

    async def request(
        self, type: str, data: Any = None, *, v: int | None = None, timeout: float = 3
    ) -> dict:
        """Send a frame with a fresh id and return the matching rt.ack / rt.error.

        Frames that arrive in between are kept in ``self.events``.
        """
        frame_id = f"t{next(self._ids)}"
        frame: dict[str, Any] = {"type": type, "id": frame_id, "data": data or {}}
        if v is not None:
            frame["v"] = v
        await self.send_frame(frame)
        while True:
            reply = await self.receive_frame(timeout)
            if reply.get("id") == frame_id and reply["type"] in ("rt.ack", "rt.error"):
                return reply
            self.events.append(reply)

    @property
    def events(self) -> list[dict]:
        return self.__dict__.setdefault("_events", [])

    async def subscribe(self, group: str, **kw: Any) -> dict:
        return await self.request("rt.subscribe", {"group": group, **kw})
