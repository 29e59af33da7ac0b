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
"""

from __future__ import annotations

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


def direct_writer(send: Callable) -> Callable[[bytes], bool] | None:
    """A function that writes a frame to ``send``'s daphne connection and returns
    True, or False when this frame must go through ``send``; None for other servers."""
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
        open_state = protocol.STATE_OPEN
        protocol.send_queue, protocol._perMessageCompress, protocol.transport  # noqa: B018
        fragment, largest = protocol.autoFragmentSize, protocol.maxMessagePayloadSize
    except AttributeError:  # not the autobahn this was written against
        return None
    limit = min(size for size in (fragment, largest, 1 << 62) if size > 0)

    def write(frame: bytes) -> bool:
        if (
            protocol.state != open_state
            or protocol.send_queue
            or protocol._perMessageCompress is not None
            or len(frame) > limit  # the payload is shorter: conservative
        ):
            return False
        protocol.transport.write(frame)
        return True

    return write
