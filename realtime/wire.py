"""Group events written to daphne and uvicorn sockets as ready-made WebSocket frames.

daphne passes every ``websocket.send`` through its server, its protocol and
autobahn's sendMessage, sendFrame and sendData; autobahn 26 formats the arguments of
a debug log line for every frame even with debug logging off. uvicorn frames each
message with websockets' sans-I/O protocol. Either is most of the server's CPU per
fan-out delivery (docs/benchmarks.md). A server-to-client text frame is the same bytes
for every socket (servers do not mask), so the hub builds it once per event and writes
it to each connection's transport, only while the server itself would write exactly
those bytes there: the connection is open, uncompressed, has nothing queued, and the
frame needs no fragmenting. Every other case (other servers or protocol versions,
compression, flow control) uses the ASGI send, and so does every frame when
REALTIME["DIRECT_WRITES"] is False.

Frames are held until the end of the event-loop turn and each socket's are written at
once. Handed to Twisted one by one, every burst cost each socket a writer
registration, a wake-up and a deregistration (two ``epoll_ctl`` calls and a callback);
sent at once instead, each frame would be a TCP segment of its own, which multiplies
the reader's work. On daphne the bytes go straight to the socket while Twisted holds
nothing for it; what the kernel does not take goes to the transport, which then writes
it as usual. Anything the consumer sends through the server first flushes what is held
(``OutboundMixin._flush_held``), so the socket sees the order of the writes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from realtime import compression

logger = logging.getLogger(__name__)


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


@functools.cache
def _uvicorn_protocol() -> Any:
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import (
            WebSocketsSansIOProtocol,
        )
        from websockets.protocol import State
    except ImportError:
        return None
    return WebSocketsSansIOProtocol, State.OPEN


def direct_writer(send: Callable) -> DirectWriter | None:
    """A writer of frames to ``send``'s connection; None for other servers."""
    try:
        if isinstance(send, functools.partial):
            if (
                _daphne_reply() is not None
                and getattr(send.func, "__func__", None) is _daphne_reply()
                and len(send.args) == 1
                and not send.keywords
            ):
                return DaphneWriter(send.args[0], asyncio.get_running_loop())
        elif _uvicorn_protocol() is not None:
            cls, _open = _uvicorn_protocol()
            method: Any = send
            if getattr(method, "__func__", None) is cls.send:
                return UvicornWriter(method.__self__, asyncio.get_running_loop())
    except AttributeError:  # not the server version this was written against
        pass
    return None


class DirectWriter:
    """Writes ready-made frames to one connection, once per loop turn."""

    __slots__ = ("deflate", "loop", "pending", "protocol")

    def __init__(self, protocol: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.protocol, self.loop = protocol, loop
        self.pending: list[bytes] | None = None
        # The connection takes this process's shared compressed frames
        # (realtime.compression); set by the server's writer.
        self.deflate = False

    def writable(self, frame: bytes) -> bool:
        """The server would write exactly ``frame`` to the transport now."""
        raise NotImplementedError

    def still_open(self) -> bool:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def __call__(self, frame: bytes) -> bool:
        """Take ``frame`` and return True, or False when it must go through the
        ASGI send."""
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
        """Write what is held now (before anything else is sent on the socket)."""
        frames, self.pending = self.pending, None
        if frames and self.still_open():  # closing: the server drops data frames too
            self.write(frames[0] if len(frames) == 1 else b"".join(frames))


class DaphneWriter(DirectWriter):
    """daphne 4 on autobahn: straight to the TCP socket when Twisted holds nothing."""

    __slots__ = ("limit", "open_state")

    def __init__(self, protocol: Any, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(protocol, loop)
        self.open_state = protocol.STATE_OPEN
        protocol.send_queue  # noqa: B018
        self.deflate = compression.shared_frames_allowed(protocol._perMessageCompress)
        sizes = (protocol.autoFragmentSize, protocol.maxMessagePayloadSize, 1 << 62)
        self.limit = min(size for size in sizes if size > 0)

    def writable(self, frame: bytes) -> bool:
        protocol = self.protocol
        return (
            protocol.state == self.open_state
            and not protocol.send_queue
            # Negotiated by realtime.deflate_negotiation: plain and shared
            # compressed frames leave autobahn's compressor untouched.
            and (protocol._perMessageCompress is None or self.deflate)
            and len(frame) <= self.limit  # the payload is shorter: conservative
        )

    def still_open(self) -> bool:
        return self.protocol.state == self.open_state

    def write(self, data: bytes) -> None:
        # Plain TCP only: a TLS transport (wss) encrypts in Twisted, and its wrapper
        # answers for the raw socket underneath.
        transport = self.protocol.transport
        tcp = _tcp_connection()
        if (
            tcp is None
            or not isinstance(transport, tcp)
            or transport.dataBuffer
            or transport._tempDataBuffer
            or transport.disconnecting
            or not transport.connected
        ):
            transport.write(data)  # after what Twisted holds
            return
        try:
            sent = transport.socket.send(data)
        except OSError:  # full, or broken: Twisted handles both as usual
            sent = 0
        if sent < len(data):
            transport.write(data[sent:] if sent else data)


class UvicornWriter(DirectWriter):
    """uvicorn's websockets sans-I/O protocol: one ``transport.write`` per turn."""

    __slots__ = ("open_state",)

    def __init__(self, protocol: Any, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(protocol, loop)
        self.open_state = _uvicorn_protocol()[1]
        protocol.writable, protocol.transport  # noqa: B018
        extensions = protocol.conn.extensions
        self.deflate = bool(extensions) and all(
            compression.shared_frames_allowed(extension) for extension in extensions
        )

    def writable(self, frame: bytes) -> bool:
        protocol = self.protocol
        conn = protocol.conn
        return (
            protocol.handshake_complete
            and not protocol.close_sent
            and protocol.initial_response is None
            and protocol.writable.is_set()  # else flow control: the ASGI send waits
            and conn.state is self.open_state
            and (not conn.extensions or self.deflate)  # see DaphneWriter
            and not conn.expect_continuation_frame
        )

    def still_open(self) -> bool:
        protocol = self.protocol
        return (
            not protocol.close_sent
            and protocol.conn.state is self.open_state
            and not protocol.transport.is_closing()
        )

    def write(self, data: bytes) -> None:
        self.protocol.transport.write(data)


_dirty: dict[asyncio.AbstractEventLoop, list[DirectWriter]] = {}


def _flush_turn(loop: asyncio.AbstractEventLoop) -> None:
    for writer in _dirty.pop(loop, ()):
        try:
            writer.flush()
        except Exception:
            # One broken socket must not keep the frames of the writers after it
            # held (they would wait for their own socket's next ASGI send).
            logger.exception("writing frames to a connection failed")


@functools.cache
def _tcp_connection() -> Any:
    try:
        from twisted.internet.tcp import Connection
    except ImportError:
        return None
    return Connection
