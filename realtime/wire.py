"""Group events written to daphne sockets as ready-made WebSocket frames.

daphne passes every ``websocket.send`` through its server, its protocol and
autobahn's sendMessage, sendFrame and sendData; autobahn 26 formats the arguments of
a debug log line for every frame even with debug logging off. Together that is about
half of daphne's CPU per fan-out delivery (docs/benchmarks.md). A server-to-client
text frame is the same bytes for every socket (servers do not mask), so the hub
builds it once per event and writes it to each daphne connection's transport, only
while autobahn itself would write exactly those bytes there: the connection is open,
uncompressed, has nothing queued, and the frame needs no fragmenting. Every other
case (uvicorn, other servers, another daphne or autobahn) uses the ASGI send.

Frames are held until the end of the event-loop turn and each socket's are sent with
one ``send()``. Handed to Twisted one by one, every burst cost each socket a writer
registration, a wake-up and a deregistration (two ``epoll_ctl`` calls and a callback);
sent at once instead, each frame would be a TCP segment of its own, which multiplies
the reader's work. Only when the kernel does not take everything does the rest go to
the transport, which then writes it as usual.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any


def text_frame(text: str) -> bytes:
    """One unfragmented, unmasked WebSocket text frame (RFC 6455 section 5.2)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return b"\x81\x7e" + size.to_bytes(2, "big") + payload
    return b"\x81\x7f" + size.to_bytes(8, "big") + payload


@functools.cache
def _daphne_reply() -> Any:
    try:
        from daphne.server import Server
    except ImportError:
        return None
    return Server.handle_reply


def direct_writer(send: Callable) -> DirectWriter | None:
    """A writer of frames to ``send``'s daphne connection; None for other servers."""
    handle_reply = _daphne_reply()
    if (
        handle_reply is None
        or not isinstance(send, functools.partial)
        or getattr(send.func, "__func__", None) is not handle_reply
        or len(send.args) != 1
        or send.keywords
    ):
        return None
    protocol = send.args[0]
    try:
        protocol.STATE_OPEN, protocol.send_queue, protocol._perMessageCompress  # noqa: B018
        protocol.autoFragmentSize, protocol.maxMessagePayloadSize  # noqa: B018
    except AttributeError:  # not the autobahn this was written against
        return None
    return DirectWriter(protocol, asyncio.get_running_loop())


class DirectWriter:
    """Writes ready-made frames to one daphne connection, once per loop turn."""

    __slots__ = ("limit", "loop", "open_state", "pending", "protocol")

    def __init__(self, protocol: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.protocol, self.loop = protocol, loop
        self.open_state = protocol.STATE_OPEN
        sizes = (protocol.autoFragmentSize, protocol.maxMessagePayloadSize, 1 << 62)
        self.limit = min(size for size in sizes if size > 0)
        self.pending: list[bytes] | None = None

    def __call__(self, frame: bytes) -> bool:
        """Take ``frame`` and return True, or False when it must go through the
        ASGI send (autobahn would not write exactly these bytes now)."""
        protocol = self.protocol
        if (
            protocol.state != self.open_state
            or protocol.send_queue
            or protocol._perMessageCompress is not None
            or len(frame) > self.limit  # the payload is shorter: conservative
        ):
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
        """Write what is held now (before anything else is sent on the socket)."""
        frames, self.pending = self.pending, None
        if not frames:
            return
        protocol = self.protocol
        if protocol.state != self.open_state:
            return  # closing: autobahn drops data frames after its close frame too
        _send(protocol.transport, frames[0] if len(frames) == 1 else b"".join(frames))


_dirty: dict[asyncio.AbstractEventLoop, list[DirectWriter]] = {}


def _flush_turn(loop: asyncio.AbstractEventLoop) -> None:
    for writer in _dirty.pop(loop, ()):
        writer.flush()


@functools.cache
def _tcp_connection() -> type | None:
    try:
        from twisted.internet.tcp import Connection
    except ImportError:
        return None
    return Connection


def _send(transport: Any, data: bytes) -> None:
    # Straight to the socket when Twisted holds nothing for it (else the bytes would
    # overtake what it holds); whatever the kernel does not take goes to Twisted.
    # Plain TCP only: a TLS transport (wss) encrypts in Twisted, and its wrapper
    # answers for the raw socket underneath.
    tcp = _tcp_connection()
    if (
        tcp is None
        or not isinstance(transport, tcp)
        or transport.dataBuffer
        or transport._tempDataBuffer
        or transport.disconnecting
        or not transport.connected
    ):
        transport.write(data)
        return
    try:
        sent = transport.socket.send(data)
    except OSError:  # full, or broken: Twisted handles both as usual
        sent = 0
    if sent < len(data):
        transport.write(data[sent:] if sent else data)
