"""Make daphne and uvicorn negotiate the permessage-deflate of realtime.compression.

Called for every WebSocket before the application accepts it (the server answers the
client's offer only when the ASGI ``websocket.accept`` arrives), with the server's
own ``send``. Each server is told, on that one connection, to accept an offer with
``server_no_context_takeover`` and a server window of
``realtime.compression.WINDOW_BITS``, and to inflate a client's message to at most
REALTIME["MAX_FRAME_BYTES"] (a larger one is closed with 1009). Group events then
go out as the process's shared compressed frame (realtime.wire); the server's own
compression, now without a context per socket, is left to replies and pings.

daphne (autobahn) refuses every offer by default; its protocol's
``perMessageCompressionAccept`` is set here. uvicorn's sans-I/O protocol (``--ws auto``
or ``websockets-sansio``) keeps a compressor per socket; its extension is replaced (it
has answered the offer already: its answer, not yet sent, is made again). Other
servers, and uvicorn's legacy ``--ws websockets``, are left alone. Other servers
are left alone.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from realtime.compression import WINDOW_BITS
from realtime.settings import realtime_settings

logger = logging.getLogger(__name__)
# The servers' own compressor, made for each reply or ping (short frames): a quarter of
# zlib's default hash memory (24 KiB in all instead of 144) is enough for them.
REPLY_MEM_LEVEL = 4


def negotiate(send: Callable) -> None:
    """Set up the negotiation of the connection behind ``send`` (no-op for a server
    this does not know)."""
    protocol: Any
    try:
        if isinstance(send, functools.partial):
            protocol = send.args[0] if len(send.args) == 1 else None
            if hasattr(protocol, "perMessageCompressionAccept") and _autobahn():
                protocol.perMessageCompressionAccept = functools.partial(
                    _accept_autobahn, protocol
                )
            return
        protocol = getattr(send, "__self__", None)
        if type(protocol).__module__.startswith("uvicorn.protocols.websockets"):
            factory = _websockets_factory()
            if factory is None:
                return
            conn: Any = getattr(protocol, "conn", None)
            # The sans-I/O protocol only: the legacy one (--ws websockets) has
            # negotiated already, and its answer cannot be changed any more.
            if conn is not None and hasattr(conn, "available_extensions"):
                _renegotiate(protocol, conn, factory)
    except Exception:  # a server version this was not written against
        logger.debug("permessage-deflate left to the server", exc_info=True)


def _renegotiate(protocol: Any, conn: Any, factory: Any) -> None:
    # The sans-I/O protocol answered the offer when the request arrived, before
    # the application ran; the answer waits in ``protocol.response`` until the
    # application accepts, so it is made again with this process's extension.
    response = protocol.response
    if protocol.handshake_complete or response is None or response.status_code != 101:
        return
    conn.available_extensions = [factory]
    header, conn.extensions = conn.process_extensions(protocol.request.headers)
    del response.headers["Sec-WebSocket-Extensions"]
    if header is not None:
        response.headers["Sec-WebSocket-Extensions"] = header


@functools.cache
def _autobahn() -> Any:
    try:
        from autobahn.websocket.compress import (
            PerMessageDeflateOffer,
            PerMessageDeflateOfferAccept,
        )
    except ImportError:
        return None

    class SharedAccept(PerMessageDeflateOfferAccept):  # type: ignore[misc]
        # autobahn 26 announces only the server parameters the client asked for;
        # the client may then free its window between messages only if told.
        def get_extension_string(self) -> str:
            answer: str = super().get_extension_string()
            if not self.offer.request_no_context_takeover:
                answer += "; server_no_context_takeover"
            if not self.offer.request_max_window_bits:
                answer += f"; server_max_window_bits={self.window_bits}"
            return answer

    return PerMessageDeflateOffer, SharedAccept


def _accept_autobahn(protocol: Any, offers: list) -> Any:
    offer_type, accept_type = _autobahn()
    for offer in offers:
        if not isinstance(offer, offer_type):
            continue
        # daphne's autobahn drops the TCP connection of a client that breaks a
        # limit; a message inflating past MAX_FRAME_BYTES is answered with 1009.
        protocol.failByDrop = False
        asked = offer.request_max_window_bits  # 0: the client did not ask
        accept = accept_type(
            offer,
            request_max_window_bits=WINDOW_BITS if offer.accept_max_window_bits else 0,
            no_context_takeover=True,
            window_bits=min(WINDOW_BITS, asked) if asked else WINDOW_BITS,
            mem_level=REPLY_MEM_LEVEL,
            max_message_size=realtime_settings.MAX_FRAME_BYTES,
        )
        # Inflating a client's message then needs no window kept between messages.
        # A server may ask this of any client (RFC 7692 section 7.1.1.1); autobahn
        # asks only a client that offered it.
        accept.request_no_context_takeover = True
        asyncio.get_running_loop().call_soon(_release_between_messages, protocol)
        return accept
    return None


def _release_between_messages(protocol: Any) -> None:
    # Without context takeover either way, autobahn still keeps the last message's
    # zlib objects until the next one: each is
    # dropped once its message is done, so an idle socket holds none.
    extension = protocol._perMessageCompress
    if extension is None or not (
        extension.server_no_context_takeover and extension.client_no_context_takeover
    ):
        return
    end_compress = extension.end_compress_message
    end_decompress = extension.end_decompress_message

    def end_compress_message() -> bytes:
        try:
            data: bytes = end_compress()
        finally:
            extension._compressor = None
        return data

    def end_decompress_message() -> None:
        try:
            end_decompress()
        finally:
            extension._decompressor = None

    extension.end_compress_message = end_compress_message
    extension.end_decompress_message = end_decompress_message
    extension._compressor = None  # only used within sendMessage, never in between
    protocol.perMessageCompressionAccept = None  # negotiated: not needed any more


@functools.cache
def _websockets_factory() -> Any:
    try:
        from websockets.extensions.permessage_deflate import (
            ServerPerMessageDeflateFactory,
        )
    except ImportError:
        return None
    return ServerPerMessageDeflateFactory(
        server_no_context_takeover=True,
        # The server may ask this of any client (RFC 7692 section 7.1.1.2).
        client_no_context_takeover=True,
        server_max_window_bits=WINDOW_BITS,
        compress_settings={"memLevel": REPLY_MEM_LEVEL},
    )
