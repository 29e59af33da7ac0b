"""A group event as a process received it: the frame every local socket is written.

The hub builds one per event and hands it to each subscribed connection; variants for
clients that declared an older version of the event are made once and cached.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from realtime import compression
from realtime.frames import EventFrame
from realtime.schema import registry as events
from realtime.settings import realtime_settings
from realtime.transport.frames import text_frame

logger = logging.getLogger(__name__)


class Event:
    """One event as the hub received it; variants for older clients are cached."""

    __slots__ = (
        "_deflated",
        "_variants",
        "arrival",
        "epoch",
        "exclude",
        "frame",
        "group",
        "message",
        "seq",
        "text",
        "type",
        "v",
    )

    def __init__(self, message: dict[str, Any]) -> None:
        self.group: str = message["group"]
        self.type: str = message["event"]
        self.v: int | None = message.get("v")
        self.seq: int | None = message.get("seq")
        self.epoch: str | None = message.get("epoch")
        self.text: str = message["text"]
        # Order of arrival at this process's hub (see Hub.read_since).
        self.arrival = 0
        # The ASGI message every local socket is sent (servers do not mutate it).
        self.message = {"type": "websocket.send", "text": self.text}
        self.frame = text_frame(self.text)  # the same on every daphne socket
        # The sender of an ephemeral client event does not get its own echo.
        self.exclude: str | None = message.get("exclude")
        self._variants: dict[int, str | None] | None = None
        self._deflated: bytes | bool | None = False  # False: not compressed yet

    # -- permessage-deflate (realtime.compression) --------------------------------
    def deflated_frame(self) -> bytes | None:
        """The compressed frame for sockets that negotiated the shared compression,
        made on first use, once per process; None: send the plain frame."""
        deflated = self._deflated
        if deflated is False:
            deflated = self._deflated = compression.deflated_text_frame(
                self.text.encode(),
                realtime_settings.COMPRESSION_MIN_BYTES,
            )
        return deflated  # type: ignore[return-value]

    def text_for(self, version: int | None) -> str | None:
        """The frame for a client that understands ``version`` (None: skip)."""
        if version is None or self.v is None or version >= self.v:
            return self.text
        if self._variants is None:
            self._variants = {}
        if version not in self._variants:
            self._variants[version] = self._downgrade(self.v, version)
        return self._variants[version]

    def _downgrade(self, current: int, version: int) -> str | None:
        try:
            target, data = events.downgrade_for(
                self.type, orjson.loads(self.text)["data"], current, version
            )
        except LookupError as exc:  # NoDowngrade
            logger.warning(
                "not sent to a v%s client of %s: %s", version, self.type, exc
            )
            return None
        return EventFrame(self.group, self.type, data, target).text(self.seq)
