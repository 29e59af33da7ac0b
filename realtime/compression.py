"""permessage-deflate (RFC 7692) done once per process, for every socket at once.

A server compressing each socket's messages with a zlib context of its own pays the
compression once per delivery and keeps a compressor per connection (hundreds of
kilobytes with zlib's defaults). A connection that negotiated
``server_no_context_takeover`` decodes every message on its own, so the same
compressed bytes are valid on all of them: the hub compresses an event once and
writes that frame, with RSV1 set, to every socket that negotiated it.
``realtime.deflate_negotiation`` makes daphne and uvicorn negotiate exactly that.

A message below the threshold goes uncompressed (RSV1 is per message): deflating a
short frame costs more CPU than the few bytes it saves.
"""

from __future__ import annotations

import zlib
from typing import Any

# The server-to-client window this process compresses with, announced as
# server_max_window_bits: a decoder needs no more than 4 KiB of window per socket.
WINDOW_BITS = 12
LEVEL = 6
MEM_LEVEL = 8
_TAIL = b"\x00\x00\xff\xff"

# Messages deflated since the process started (a shared compression per event).
compressed = 0


def deflate(payload: bytes) -> bytes:
    """``payload`` as one permessage-deflate message body, without context."""
    global compressed
    compressed += 1
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -WINDOW_BITS, MEM_LEVEL)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    # RFC 7692 section 7.2.1: the sync flush's empty block tail is left off.
    return data[:-4] if data.endswith(_TAIL) else data


def frame(first_byte: int, payload: bytes) -> bytes:
    """One unfragmented, unmasked WebSocket frame (RFC 6455 section 5.2)."""
    size = len(payload)
    if size < 126:
        return bytes((first_byte, size)) + payload
    if size < 65536:
        return bytes((first_byte, 126)) + size.to_bytes(2, "big") + payload
    return bytes((first_byte, 127)) + size.to_bytes(8, "big") + payload


def deflated_text_frame(payload: bytes, threshold: int) -> bytes | None:
    """A compressed text frame (FIN, RSV1) of ``payload``; None when the payload
    is shorter than ``threshold`` or does not shrink."""
    if len(payload) < threshold:
        return None
    body = deflate(payload)
    if len(body) >= len(payload):
        return None
    return frame(0xC1, body)


def shared_frames_allowed(extension: Any) -> bool:
    """A negotiated permessage-deflate of daphne (autobahn) or uvicorn (websockets)
    accepts this process's shared frames: no server context takeover, a window at
    least WINDOW_BITS. None (nothing negotiated) does not."""
    if extension is None:
        return False
    takeover_off = getattr(extension, "server_no_context_takeover", None)
    bits = getattr(extension, "server_max_window_bits", None)
    if takeover_off is None:  # websockets names the server's side "local"
        takeover_off = getattr(extension, "local_no_context_takeover", False)
        bits = getattr(extension, "local_max_window_bits", None)
    return bool(takeover_off) and isinstance(bits, int) and bits >= WINDOW_BITS
