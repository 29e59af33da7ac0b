"""The frame-writer interface, its default (the ASGI send) and the loop-turn flush.

A connection hands each group event's ready-made frame to its ``FrameWriter``. The
default, ``AsgiSend``, takes none: the connection sends the event through the
server's ASGI send, which frames it itself. A ``DirectWriter`` (one per supported
server: realtime.transport.daphne, realtime.transport.uvicorn) writes the frame to the
server's transport, only while the server itself would write exactly those bytes
there: the connection is open, uncompressed, has nothing queued, and the frame needs
no fragmenting. An empty text (a 2-byte frame) is left to the server: daphne and
uvicorn 0.35's sans-I/O protocol send no frame at all for one, later uvicorns do. Every other case (compression, flow control, closing) returns False,
and the frame goes through the ASGI send.

Frames are held until the end of the event-loop turn and each socket's are written at
once. Handed to Twisted one by one, every burst cost each socket a writer
registration, a wake-up and a deregistration (two ``epoll_ctl`` calls and a callback);
sent at once instead, each frame would be a TCP segment of its own, which multiplies
the reader's work. Anything the connection sends through the server first flushes
what is held, so the socket sees the order of the writes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

logger = logging.getLogger(__name__)


class FrameWriter:
    """Writes ready-made frames to one connection, or declines them."""

    __slots__ = ()

    #: The connection takes this process's shared compressed frames
    #: (realtime.compression).
    deflate = False

    def __call__(self, frame: bytes) -> bool:
        """Take ``frame`` and return True, or False when it must go through the
        ASGI send."""
        raise NotImplementedError

    def flush(self) -> None:
        """Write what is held now (before anything else is sent on the socket)."""
        raise NotImplementedError


class AsgiSend(FrameWriter):
    """The default: every frame is declined, so the server's ASGI send frames it."""

    __slots__ = ()

    def __call__(self, frame: bytes) -> bool:
        return False

    def flush(self) -> None:
        pass


#: One for every connection: it holds nothing.
ASGI_SEND = AsgiSend()


class DirectWriter(FrameWriter):
    """Writes frames to one connection's transport, once per loop turn."""

    __slots__ = ("deflate", "loop", "pending", "protocol")

    def __init__(self, protocol: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.protocol, self.loop = protocol, loop
        self.pending: list[bytes] | None = None
        # Set by the server's writer when the connection negotiated the shared
        # compression (realtime.deflate_negotiation).
        self.deflate = False

    def writable(self, frame: bytes) -> bool:
        """The server would write exactly ``frame`` to the transport now."""
        raise NotImplementedError

    def still_open(self) -> bool:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def __call__(self, frame: bytes) -> bool:
        if not self.writable(frame):
            return False
        if self.pending is None:
            self.pending = [frame]
            dirty = _dirty.get(self.loop)
            if dirty is None:
                _dirty[self.loop] = [self]
                self.loop.call_soon(_flush_turn, self.loop)
            else:
                dirty.append(self)
        else:
            self.pending.append(frame)
        return True

    def flush(self) -> None:
        frames, self.pending = self.pending, None
        if frames and self.still_open():  # closing: the server drops data frames too
            self.write(frames[0] if len(frames) == 1 else b"".join(frames))


_dirty: dict[asyncio.AbstractEventLoop, list[DirectWriter]] = {}


def _flush_turn(loop: asyncio.AbstractEventLoop) -> None:
    for writer in _dirty.pop(loop, ()):
        try:
            writer.flush()
        except Exception:
            # One broken socket must not keep the frames of the writers after it
            # held (they would wait for their own socket's next ASGI send).
            logger.exception("writing frames to a connection failed")
