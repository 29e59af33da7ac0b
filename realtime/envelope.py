"""The client-to-server envelope: parsing and checking one frame before routing it.

``{"type": str, "v": int?, "id": str?, "data": object?}`` (docs/protocol.md).
"""

from __future__ import annotations

from typing import Any

from realtime import exceptions as exc
from realtime.connection import Connection
from realtime.settings import realtime_settings


class Message:
    """A validated client event, as a handler receives it."""

    __slots__ = ("consumer", "data", "id", "type", "v")

    def __init__(
        self, type: str, v: int, id: str | None, data: dict, consumer: Connection
    ) -> None:
        self.type, self.v, self.id, self.data, self.consumer = (
            type,
            v,
            id,
            data,
            consumer,
        )

    @property
    def user(self) -> Any:
        return self.consumer.user


def check_nesting(text: str, frame: Any) -> None:
    """Refuse frames nested deeper than MAX_NESTING.

    orjson accepts 1024 levels, but DRF fields, repr() and copies recurse in Python,
    whose stack a daphne server has only ~900 frames left of: deep data would end as
    a RecursionError (server_error and a huge logged traceback) instead of bad_json.
    """
    limit = realtime_settings.MAX_NESTING
    if text.count("{") + text.count("[") <= limit:
        return  # cannot be deeper than the number of openers (C-speed pre-check)
    containers = (dict, list)
    stack = [(frame, 1)] if type(frame) in containers else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            raise exc.BadJSON(f"frame is nested deeper than {limit} levels")
        items = value.values() if isinstance(value, dict) else value
        stack.extend((item, depth + 1) for item in items if type(item) in containers)


def frame_id(frame: Any) -> str | None:
    """The client's ``id`` when it is a valid one (replies carry it back)."""
    if isinstance(frame, dict):
        found = frame.get("id")
        if isinstance(found, str) and 0 < len(found) <= 128:
            return found
    return None


def parse(frame: Any) -> tuple[str, int | None, dict]:
    """Return (type, v, data) of a decoded frame, or raise BadEnvelope."""
    if not isinstance(frame, dict):
        raise exc.BadEnvelope(
            f"frame must be a JSON object, got {type(frame).__name__}"
        )
    type_ = frame.get("type")
    if not isinstance(type_, str) or not 0 < len(type_) <= 100:
        raise exc.BadEnvelope(
            "type must be a non-empty string of at most 100 characters"
        )
    v = frame.get("v")
    if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
        raise exc.BadEnvelope("v must be an int >= 1")
    if "id" in frame and frame["id"] is not None and frame_id(frame) is None:
        raise exc.BadEnvelope("id must be a string of 1-128 characters")
    data = frame.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise exc.BadEnvelope(f"data must be an object, got {type(data).__name__}")
    return type_, v, data
