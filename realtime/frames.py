"""The frame of a group event, built in one place for every publisher.

A group event reaches clients as ``{"type", "v"?, "group", "seq"?, "data"}``. It is
encoded once, split where its seq goes, so that whoever numbers it (a backend's
``append``, the Redis publish script) stores and sends ``prefix + seq + suffix``
without encoding it again. Between processes it travels in the channel layer as an
``rt.event`` message carrying that text (``layer_message``; the hub reads it back
into a ``live.Event``).
"""

from __future__ import annotations

from typing import Any

from realtime.encoding import dumps

#: The ``type`` of the channel-layer message that carries a group event.
LAYER_EVENT = "rt.event"


class EventFrame:
    """One event's frame for ``group``, encoded once: ``text(seq)`` is the frame."""

    __slots__ = ("group", "head", "suffix", "type", "v")

    def __init__(self, group: str, type: str, data: Any, v: int | None) -> None:
        self.group, self.type, self.v = group, type, v
        head = (
            {"type": type, "v": v, "group": group}
            if v
            else {"type": type, "group": group}
        )
        # The header without its closing brace: the seq (if any) and data follow.
        self.head = dumps(head)[:-1].decode()
        self.suffix = (
            ',"data":' + dumps(data if data is not None else {}).decode() + "}"
        )

    @property
    def prefix(self) -> str:
        """The frame up to its seq: ``prefix + str(seq) + suffix`` is the frame."""
        return self.head + ',"seq":'

    def text(self, seq: int | None) -> str:
        """The frame as clients receive it (no ``seq`` key when ``seq`` is None)."""
        if seq is None:
            return self.head + self.suffix
        return f'{self.head},"seq":{seq}{self.suffix}'

    def message(
        self, seq: int | None, epoch: str | None = None, exclude: str | None = None
    ) -> dict[str, Any]:
        """The channel-layer message that carries this frame to every process."""
        message = layer_message(
            self.group, self.type, self.v, seq, self.text(seq), epoch
        )
        if exclude is not None:
            # The sender of an ephemeral client event does not get its own echo.
            message["exclude"] = exclude
        return message


def layer_message(
    group: str,
    type: str,
    v: int | None,
    seq: int | None,
    text: str,
    epoch: str | None = None,
) -> dict[str, Any]:
    """An ``rt.event`` channel-layer message for an encoded frame ``text``."""
    return {
        "type": LAYER_EVENT,
        "group": group,
        "event": type,
        "v": v,
        "seq": seq,
        "epoch": epoch,
        "text": text,
    }
