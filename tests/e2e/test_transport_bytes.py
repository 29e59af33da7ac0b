"""The bytes realtime.transport's direct writers put on the wire are the server's own.

A real daphne or uvicorn process serves tests/support/bytes_app.py; a raw TCP client
reads every byte the server writes after the handshake. The same frames go once
through the connection's frame writer and once through the plain ASGI send (the
server's own framing): text frames whose payload lengths take each length encoding
(0, 125, 126, 65535, 65536 and more bytes), an ``rt.ping`` sent after them, the pong
to the client's ping and the close frame must come out byte for byte the same, and
every text frame must be ``transport.text_frame`` of its text. The sessions of
noxfile.py (``nox -s servers``) run this file for each supported server version;
the default run uses the installed ones.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass

import pytest

from realtime import transport
from realtime.transport import daphne as daphne_adapter
from realtime.transport import uvicorn as uvicorn_adapter
from realtime.transport import versions
from tests.support.bytes_app import CLOSE_CODE, CLOSE_REASON, PING, SIZES, text_of
from tests.support.processes import ROOT, free_port, start_server

REASON = CLOSE_REASON.encode()

pytestmark = pytest.mark.e2e

DEADLINE = 15.0  # seconds for one connection's whole exchange


def uvicorn_protocols() -> list[str]:
    if importlib.util.find_spec("uvicorn") is None:
        return []
    from uvicorn.config import WS_PROTOCOLS

    wanted = {"websockets-sansio": "websockets", "websockets": "websockets"}
    wanted["wsproto"] = "wsproto"
    return [
        name
        for name, module in wanted.items()
        if name in WS_PROTOCOLS and importlib.util.find_spec(module) is not None
    ]


SERVERS = [("daphne", None)] + [("uvicorn", ws) for ws in uvicorn_protocols()]


@dataclass
class Frame:
    raw: bytes
    fin: bool
    opcode: int
    payload: bytes


class RawClient:
    """A WebSocket client on a plain socket that keeps every byte it receives."""

    def __init__(self, port: int, query: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        self.deadline = time.monotonic() + DEADLINE
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        self.sock.sendall(
            (
                f"GET /?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        self.received = self.buffer  # every byte after the handshake
        self.eof = False

    def _read(self) -> None:
        self.sock.settimeout(max(self.deadline - time.monotonic(), 0.01))
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            self.eof = True
            raise EOFError
        self.buffer += chunk
        if hasattr(self, "received"):
            self.received += chunk

    def frame(self) -> Frame:
        while True:
            parsed = parse(self.buffer)
            if parsed is not None:
                frame, self.buffer = parsed
                return frame
            self._read()

    def send(self, opcode: int, payload: bytes) -> None:
        # Client frames are masked (RFC 6455 section 5.3); lengths here are < 126.
        mask = secrets.token_bytes(4)
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        self.sock.sendall(bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked)

    def read_to_end(self) -> None:
        # After the close handshake daphne (Twisted) may reset the connection rather
        # than close it: either ends the stream.
        try:
            while True:
                self._read()
        except (EOFError, ConnectionResetError):
            pass

    def close(self) -> None:
        self.sock.close()


def parse(data: bytes) -> tuple[Frame, bytes] | None:
    """One server frame off the front of ``data`` (unmasked), or None if incomplete."""
    if len(data) < 2:
        return None
    fin, opcode = bool(data[0] & 0x80), data[0] & 0x0F
    assert data[0] & 0x70 == 0, "no extension was negotiated: RSV bits must be 0"
    assert not data[1] & 0x80, "a server must not mask"
    size, start = data[1] & 0x7F, 2
    if size == 126:
        size, start = int.from_bytes(data[2:4], "big"), 4
    elif size == 127:
        size, start = int.from_bytes(data[2:10], "big"), 10
    if len(data) < start + size:
        return None
    end = start + size
    return Frame(data[:end], fin, opcode, data[start:end]), data[end:]


def exchange(port: int, query: str) -> tuple[list[Frame], bytes]:
    """Read the app's frames, ping, ask for the close: (frames, every byte read)."""
    client = RawClient(port, query)
    try:
        frames = [client.frame()]
        while frames[-1].payload != PING.encode():
            frames.append(client.frame())
        client.send(0x9, b"probe")
        frames.append(client.frame())
        client.send(0x1, b"close")
        frames.append(client.frame())
        client.send(0x8, frames[-1].payload[:2])  # echo the close code
        client.read_to_end()
        assert not client.buffer, f"bytes after the close frame: {client.buffer!r}"
        return frames, client.received
    finally:
        client.close()


@pytest.fixture
def serve(tmp_path):
    started: list[subprocess.Popen] = []

    def start(server: str, ws: str | None, **env: str) -> tuple[int, object]:
        port = free_port()
        report, log = tmp_path / f"report-{port}", tmp_path / f"{server}-{port}.log"
        environ = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "BYTES_REPORT": str(report),
            **env,
        }
        environ.pop("DJANGO_SETTINGS_MODULE", None)
        args = ["--ws", ws, "--lifespan", "off"] if ws else []
        started.append(
            start_server(
                "tests.support.bytes_app:app",
                port,
                env=environ,
                log=log,
                server=server,
                args=args,
            )
        )
        return port, (report, log)

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def reports(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def sent_sizes(server: str, ws: str | None) -> list[int]:
    """The sizes a server sends a frame for: daphne and uvicorn 0.35's sans-I/O
    protocol send none for an empty text, and the writers leave empty texts to the
    server's ASGI send."""
    if server == "daphne" or (
        ws == "websockets-sansio" and versions.installed("uvicorn") < (0, 36)
    ):
        return [size for size in SIZES if size]
    return list(SIZES)


def expected_writer(server: str, ws: str | None) -> str:
    if server == "daphne":
        return "DaphneWriter" if daphne_adapter.check() is None else "AsgiSend"
    if ws == "websockets-sansio" and uvicorn_adapter.check() is None:
        return "UvicornWriter"
    return "AsgiSend"


@pytest.mark.parametrize(
    ("server", "ws"), SERVERS, ids=[ws or server for server, ws in SERVERS]
)
def test_direct_frames_are_the_servers_own_bytes(serve, server, ws):
    port, (report, log) = serve(server, ws)
    direct_frames, direct_bytes = exchange(port, "direct=1")
    asgi_frames, asgi_bytes = exchange(port, "direct=0")

    writer = expected_writer(server, ws)
    direct_run, asgi_run = reports(report)
    assert asgi_run == {"writer": "AsgiSend", "taken": [False] * len(SIZES)}
    assert direct_run["writer"] == writer, log.read_text()
    # Every frame the server sends was written directly where a writer serves it.
    sent = sent_sizes(server, ws)
    # The writer took every frame but the empty one, which it leaves to the server.
    assert direct_run["taken"] == [writer != "AsgiSend" and size > 0 for size in SIZES]

    assert direct_bytes == asgi_bytes
    texts = [text_of(size) for size in sent] + [PING]
    assert [frame.raw for frame in direct_frames[: len(texts)]] == [
        transport.text_frame(text) for text in texts
    ]
    assert len(direct_frames) == len(texts) + 2
    *_, pong, close = direct_frames
    assert (pong.fin, pong.opcode, pong.payload) == (True, 0xA, b"probe")
    assert (close.fin, close.opcode) == (True, 0x8)
    # daphne sends no reason; uvicorn does.
    assert close.payload in (code := CLOSE_CODE.to_bytes(2, "big"), code + REASON)
    assert [frame.raw for frame in asgi_frames] == [f.raw for f in direct_frames]


def test_a_server_outside_the_supported_range_falls_back_to_the_asgi_send(serve):
    port, (report, log) = serve("daphne", None, BYTES_SUPPORTED_DAPHNE="none")
    frames, _ = exchange(port, "direct=1")
    [run] = reports(report)
    assert run == {"writer": "AsgiSend", "taken": [False] * len(SIZES)}
    assert [frame.raw for frame in frames[:-2]] == [
        transport.text_frame(text)
        for text in [*map(text_of, sent_sizes("daphne", None)), PING]
    ]
    [line] = [
        line
        for line in log.read_text().splitlines()
        if "realtime" in line or "ASGI send" in line
    ]
    assert "INFO" in line and "daphne: daphne " in line, line
    assert line.endswith(
        "is outside the supported range >=0,<0; every frame goes through the ASGI send"
    ), line


def test_direct_writes_off_uses_the_asgi_send_on_every_server(serve):
    port, (report, _log) = serve("daphne", None, BYTES_DIRECT_WRITES="0")
    exchange(port, "direct=1")
    [run] = reports(report)
    assert run == {"writer": "AsgiSend", "taken": [False] * len(SIZES)}
