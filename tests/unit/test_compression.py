"""realtime.compression: one raw-deflate message per event, shared by every socket."""

from __future__ import annotations

import zlib

import orjson
from django.test import override_settings

from realtime import compression
from realtime.live import Event


def inflate(frame: bytes) -> bytes:
    assert frame[0] == 0xC1  # FIN, RSV1, text
    size = frame[1] & 0x7F
    body = frame[2 + {126: 2, 127: 8}.get(size, 0) :]
    # A client decodes without any context kept from earlier messages.
    return zlib.decompressobj(-15).decompress(body + b"\x00\x00\xff\xff")


def event(text: str) -> Event:
    return Event({"group": "g", "event": "e", "text": text})


def test_an_event_is_compressed_once_however_many_sockets_ask():
    text = orjson.dumps({"type": "e", "data": {"items": list(range(200))}}).decode()
    shared = event(text)
    before = compression.compressed
    frames = [shared.deflated_frame() for _ in range(1000)]
    assert compression.compressed == before + 1
    assert all(frame is frames[0] for frame in frames)
    assert inflate(frames[0]) == text.encode()
    assert len(frames[0]) < len(shared.frame)


def test_short_events_and_incompressible_ones_go_plain():
    with override_settings(REALTIME={"COMPRESSION_MIN_BYTES": 256}):
        assert event("x" * 255).deflated_frame() is None
        assert event("x" * 256).deflated_frame() is not None
    noise = zlib.compress(bytes(range(256)) * 2).hex()[:300]
    random_text = "".join(chr(33 + (ord(c) * 7919) % 90) for c in noise)
    with override_settings(REALTIME={"COMPRESSION_MIN_BYTES": 0}):
        frame = event(random_text).deflated_frame()
    assert frame is None or len(frame) < len(random_text)


def test_frame_lengths_use_the_extended_forms():
    for size in (0, 125, 126, 65535, 65536):
        frame = compression.frame(0xC1, b"a" * size)
        assert len(frame) - size == (2 if size < 126 else 4 if size < 65536 else 10)


def test_only_a_server_without_context_takeover_takes_shared_frames():
    class Autobahn:
        server_no_context_takeover = True
        server_max_window_bits = compression.WINDOW_BITS

    class Websockets:
        local_no_context_takeover = True
        local_max_window_bits = compression.WINDOW_BITS - 1

    assert compression.shared_frames_allowed(Autobahn())
    assert not compression.shared_frames_allowed(Websockets())  # window too small
    assert not compression.shared_frames_allowed(None)
    Autobahn.server_no_context_takeover = False
    assert not compression.shared_frames_allowed(Autobahn())
