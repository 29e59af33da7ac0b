"""WebSocket frames built once per event: a server-to-client text frame is the same
bytes on every socket (servers do not mask), so the hub builds it once and the direct
writers (realtime.transport) put it on each connection as it is."""

from __future__ import annotations


def text_frame(text: str) -> bytes:
    """One unfragmented, unmasked WebSocket text frame (RFC 6455 section 5.2)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return b"\x81\x7e" + size.to_bytes(2, "big") + payload
    return b"\x81\x7f" + size.to_bytes(8, "big") + payload
