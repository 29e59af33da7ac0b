"""uvicorn's websockets sans-I/O protocol (``--ws websockets-sansio``): one
``transport.write`` per loop turn.

uvicorn frames each message with websockets' sans-I/O protocol, most of the server's
CPU per fan-out delivery (docs/benchmarks.md). Its other WebSocket protocols
(``websockets``, ``wsproto``) have no direct writer: their connections use the ASGI
send.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from realtime import compression
from realtime.transport.base import DirectWriter
from realtime.transport.versions import out_of_range

NAME = "uvicorn"
#: The uvicorn releases these writes were checked against (docs/deploying.md): the
#: sans-I/O protocol arrived in 0.35.
SUPPORTED = ((0, 35), (1,))


def check() -> str | None:
    """Why uvicorn's internals are not what the writer expects; None when they are."""
    outside = out_of_range("uvicorn", *SUPPORTED)
    if outside is not None:
        return outside
    try:
        protocol, _open = _sansio()
    except ImportError as error:
        return f"cannot import uvicorn's websockets-sansio protocol: {error}"
    if not callable(getattr(protocol, "send", None)):
        return "uvicorn's WebSocketsSansIOProtocol has no send"
    return None


def writer(send: Callable) -> UvicornWriter | None:
    """The writer to ``send``'s connection, if ``send`` is the ``send`` method of a
    ``WebSocketsSansIOProtocol``; None for anything else (other uvicorn protocols)."""
    protocol_class, open_state = _sansio()
    if getattr(send, "__func__", None) is not protocol_class.send:
        return None
    try:
        return UvicornWriter(send.__self__, asyncio.get_running_loop(), open_state)  # type: ignore[attr-defined]
    except AttributeError:  # a protocol without the attributes the writer reads
        return None


class UvicornWriter(DirectWriter):
    """uvicorn's websockets sans-I/O protocol: one ``transport.write`` per turn."""

    __slots__ = ("open_state",)

    def __init__(
        self, protocol: Any, loop: asyncio.AbstractEventLoop, open_state: Any
    ) -> None:
        super().__init__(protocol, loop)
        self.open_state = open_state
        protocol.writable, protocol.transport  # noqa: B018
        extensions = protocol.conn.extensions
        self.deflate = bool(extensions) and all(
            compression.shared_frames_allowed(extension) for extension in extensions
        )

    def writable(self, frame: bytes) -> bool:
        protocol = self.protocol
        conn = protocol.conn
        return (
            len(frame) > 2  # empty: uvicorn 0.35 sends nothing, later ones a frame
            and protocol.handshake_complete
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


@functools.cache
def _sansio() -> tuple[Any, Any]:
    # Imported once a uvicorn send has been seen: uvicorn is an optional dependency.
    from uvicorn.protocols.websockets.websockets_sansio_impl import (
        WebSocketsSansIOProtocol,
    )
    from websockets.protocol import State

    return WebSocketsSansIOProtocol, State.OPEN
