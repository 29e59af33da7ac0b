"""A client that has left while the server still writes to it is no server error.

Seen in the reconnect storm on daphne: clients give up on a slow server (a close frame,
then they stop reading); the server parses the close at once (autobahn's state is no
longer open) but daphne learns of the disconnect only once the TCP connection is gone,
which waits for its send buffer to drain. A write in between, such as the hub's next
heartbeat ping, raises autobahn's ``Disconnected`` ("Attempt to send on a closed
protocol"), logged with a traceback as "tick of <id> failed" (or "Exception inside
application" when it was a subscribe's ack).

Here the departing client first lets 3 MB of group events pile up unread, so the
window stays open for as long as the test needs.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time

import pytest
from websockets.sync.client import connect

pytestmark = pytest.mark.e2e

GROUP = "public.storm-gone"
EVENTS = 3000
ERRORS = ("Attempt to send on a closed protocol", "Exception inside application")


def _frame(payload: bytes, opcode: int = 0x1) -> bytes:
    # Client frames are masked; a zero mask leaves the payload as it is.
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return head + b"\0\0\0\0" + payload


def _send(sock: socket.socket, frame: dict) -> None:
    sock.sendall(_frame(json.dumps(frame).encode()))


def _raw_client(port: int) -> socket.socket:
    """A WebSocket client that reads nothing after the handshake (a tiny buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _until(ws, test, deadline: float) -> dict:
    while True:
        frame = json.loads(ws.recv(max(0.1, deadline - time.monotonic())))
        if test(frame):
            return frame


@pytest.mark.timeout(120)
def test_writes_to_a_client_that_sent_its_close_are_no_server_error(daphne):
    server = daphne(
        RATE=100000.0,
        BURST=100000,
        MAX_PENDING_BYTES=1 << 30,
        HEARTBEAT_INTERVAL=1,
    )
    deadline = time.monotonic() + 90
    gone = _raw_client(server.port)
    _send(gone, {"type": "rt.subscribe", "id": "s", "data": {"group": GROUP}})
    with connect(f"{server.url}/ws/", open_timeout=20, compression=None) as ws:
        _until(ws, lambda f: f["type"] == "rt.welcome", deadline)
        ws.send(
            json.dumps({"type": "rt.subscribe", "id": "s", "data": {"group": GROUP}})
        )
        _until(ws, lambda f: f.get("id") == "s", deadline)
        text = "x" * 1000
        for n in range(EVENTS):
            say = {"group": GROUP, "text": text, "n": n}
            ws.send(json.dumps({"type": "test.say", "id": f"n{n}", "data": say}))
        # Every event reached this client, so the server wrote it to the other too:
        # megabytes it holds for a client that reads nothing.
        last = EVENTS - 1
        _until(
            ws, lambda f: f["type"] == "test.say" and f["data"]["n"] == last, deadline
        )

        # The departing client says goodbye and stops reading.
        gone.sendall(_frame(struct.pack("!H", 1000), opcode=0x8))
        # Two heartbeats later the hub's ticker has pinged every connection it holds.
        pings = 0
        while pings < 3:
            frame = _until(ws, lambda f: f["type"] == "rt.ping", deadline)
            pong = {"type": "rt.pong", "data": frame.get("data")}
            if frame.get("id"):
                pong["id"] = frame["id"]
            ws.send(json.dumps(pong))
            pings += 1
    gone.close()

    log = server.log.read_text(errors="replace")
    assert not [e for e in ERRORS if e in log], log[-3000:]
