"""The Yjs sync and awareness messages (y-protocols), decoded strictly.

A sync message is ``varuint kind`` then ``varUint8Array payload`` (kind 0: step 1,
the sender's state vector; 1: step 2, the updates the receiver lacks; 2: an update).
An awareness update is ``varuint count`` then, per client, ``varuint client id``,
``varuint clock`` and ``varString`` JSON state (``null`` once the client left).
Every length is checked against the bytes present: a truncated or padded message is
refused before anything is applied or relayed.
"""

from __future__ import annotations

import json
from typing import Any

STEP1, STEP2, UPDATE = 0, 1, 2
#: A Yjs update that changes nothing (no structs, no deletions).
EMPTY_UPDATE = b"\x00\x00"


class Malformed(ValueError):
    """The bytes are not a well-formed message."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def uint(self) -> int:
        value = shift = 0
        while True:
            if self.pos >= len(self.data):
                raise Malformed("truncated varuint")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 53:  # lib0 numbers are JavaScript numbers
                raise Malformed("varuint too long")

    def bytes(self) -> bytes:
        length = self.uint()
        end = self.pos + length
        if end > len(self.data):
            raise Malformed("truncated payload")
        chunk, self.pos = self.data[self.pos : end], end
        return chunk

    def end(self) -> None:
        if self.pos != len(self.data):
            raise Malformed("bytes after the end of the message")


def uint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_sync(kind: int, payload: bytes) -> bytes:
    return uint(kind) + uint(len(payload)) + payload


def decode_sync(message: bytes) -> tuple[int, bytes]:
    """Return ``(kind, payload)`` of a sync message; raise Malformed."""
    reader = _Reader(message)
    kind = reader.uint()
    if kind not in (STEP1, STEP2, UPDATE):
        raise Malformed(f"unknown sync message kind {kind}")
    payload = reader.bytes()
    reader.end()
    return kind, payload


def decode_awareness(message: bytes) -> list[tuple[int, int, Any]]:
    """Return ``[(client id, clock, state)]`` of an awareness update; raise Malformed."""
    reader = _Reader(message)
    count = reader.uint()
    if count > 64:
        raise Malformed("more than 64 clients in one awareness update")
    entries = []
    for _ in range(count):
        client, clock = reader.uint(), reader.uint()
        try:
            state = json.loads(reader.bytes().decode())
        except (UnicodeDecodeError, ValueError):
            raise Malformed("awareness state is not JSON") from None
        entries.append((client, clock, state))
    reader.end()
    return entries


def encode_awareness(entries: list[tuple[int, int, Any]]) -> bytes:
    out = bytearray(uint(len(entries)))
    for client, clock, state in entries:
        text = json.dumps(state, separators=(",", ":")).encode()
        out += uint(client) + uint(clock) + uint(len(text)) + text
    return bytes(out)
