"""Shared permessage-deflate (REALTIME["COMPRESSION"]) on real daphne and uvicorn.

A raw-socket client reads the frames as they are on the wire (RSV1, payload
bytes); the websockets library checks that a real client decodes them.
"""

from __future__ import annotations

import asyncio
import base64
import os
import zlib
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from realtime import compression
from tests.support.wsclient import Client

pytestmark = pytest.mark.timeout(60)

UVICORN_SANSIO = [
    "--http",
    "h11",
    "--ws",
    "websockets-sansio",
    "--ws-max-size",
    "65536",
]
# An event of the size chat messages and notifications usually have, JSON-ish text.
TEXT = " ".join(
    f"message {n}: the quick brown fox jumps over the lazy dog" for n in range(12)
)


def start(daphne, kind: str, **settings):
    if kind == "uvicorn":
        return daphne(server="uvicorn", args=UVICORN_SANSIO, **settings)
    if kind == "uvicorn-legacy":  # --ws websockets: left to uvicorn
        legacy = [*UVICORN_SANSIO[:3], "websockets", *UVICORN_SANSIO[4:]]
        return daphne(server="uvicorn", args=legacy, **settings)
    return daphne(**settings)


class RawClient:
    """A WebSocket client over a plain TCP stream that keeps each frame's header."""

    def __init__(self, reader, writer, extensions: str | None) -> None:
        self.reader, self.writer, self.extensions = reader, writer, extensions

    @classmethod
    async def open(cls, port: int, *, offer: str | None) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            "GET /ws/ HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if offer:
            lines.append(f"Sec-WebSocket-Extensions: {offer}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert b" 101 " in head.split(b"\r\n")[0], head
        extensions = None
        for line in head.decode().split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-extensions":
                extensions = value.strip()
        return cls(reader, writer, extensions)

    async def frame(self, timeout: float = 5) -> tuple[int, int, bytes, bytes]:
        """(first byte, opcode, raw frame bytes, payload) of the next frame."""
        raw = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        size = raw[1] & 0x7F
        if size == 126:
            more = await self.reader.readexactly(2)
            raw, size = raw + more, int.from_bytes(more, "big")
        elif size == 127:
            more = await self.reader.readexactly(8)
            raw, size = raw + more, int.from_bytes(more, "big")
        payload = await self.reader.readexactly(size)
        return raw[0], raw[0] & 0x0F, raw + payload, payload

    def send(self, data: bytes, *, first_byte: int = 0x81) -> None:
        mask = os.urandom(4)
        size = len(data)
        if size < 126:
            head = bytes((first_byte, 0x80 | size))
        elif size < 65536:
            head = bytes((first_byte, 0x80 | 126)) + size.to_bytes(2, "big")
        else:
            head = bytes((first_byte, 0x80 | 127)) + size.to_bytes(8, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.writer.write(head + mask + masked)

    def send_json(self, frame: dict) -> None:
        self.send(orjson.dumps(frame))

    async def message(self, timeout: float = 5) -> tuple[bool, bytes, dict]:
        """The next text message: (compressed, frame bytes, decoded JSON); pings
        are answered."""
        while True:
            first, opcode, raw, payload = await self.frame(timeout)
            assert opcode == 1, (opcode, payload)
            compressed = bool(first & 0x40)
            if compressed:
                payload = zlib.decompressobj(-15).decompress(
                    payload + b"\x00\x00\xff\xff"
                )
            message = orjson.loads(payload)
            if message["type"] == "rt.ping":
                self.send_json({"type": "rt.pong", "data": message["data"]})
                continue
            return compressed, raw, message

    async def event(self, kind: str, timeout: float = 5) -> tuple[bool, bytes, dict]:
        while True:
            compressed, raw, message = await self.message(timeout)
            if message["type"] == kind:
                return compressed, raw, message

    async def subscribe(self, group: str) -> None:
        self.send_json({"type": "rt.subscribe", "id": "s", "data": {"group": group}})
        while (await self.message())[2].get("id") != "s":
            pass

    def close(self) -> None:
        self.writer.close()


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_one_compressed_frame_for_every_socket_that_negotiated_it(daphne, kind):
    server = start(daphne, kind, COMPRESSION=True)
    offer = "permessage-deflate; client_max_window_bits"
    deflating = [await RawClient.open(server.port, offer=offer) for _ in range(2)]
    plain = await RawClient.open(server.port, offer=None)
    for client in deflating:
        assert client.extensions is not None
        assert "server_no_context_takeover" in client.extensions
        assert f"server_max_window_bits={compression.WINDOW_BITS}" in (
            client.extensions.replace(" ", "")
        )
    assert plain.extensions is None
    clients = [*deflating, plain]
    for client in clients:
        assert (await client.message())[2]["type"] == "rt.welcome"
        await client.subscribe("public.deflate")
    deflating[0].send_json(
        {"type": "test.say", "data": {"group": "public.deflate", "text": TEXT}}
    )
    received = [await client.event("test.say") for client in clients]
    for _, _, message in received:
        assert message["data"]["text"] == TEXT
    (c1, raw1, _), (c2, raw2, _), (c3, raw3, _) = received
    assert c1 and c2 and not c3
    assert raw1 == raw2  # the same bytes: compressed once, written to both
    # As small as a compressor of its own per socket makes a single event (zlib's
    # defaults, 32 KiB window), within a few bytes.
    text = raw3[4:] if raw3[1] & 0x7F == 126 else raw3[2:]
    own = zlib.compressobj(6, zlib.DEFLATED, -15)
    alone = own.compress(text) + own.flush(zlib.Z_SYNC_FLUSH)
    print(f"{kind}: plain {len(raw3)} B, shared {len(raw1)} B, own {len(alone)} B")
    assert len(raw1) <= len(alone) - 4 + 4 + 2  # tail dropped; header ≤ 4 bytes
    assert len(raw1) < len(raw3) / 2
    for client in clients:
        client.close()


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_small_events_and_replies_stay_readable(daphne, kind):
    """Below COMPRESSION_MIN_BYTES an event goes out plain on a socket that
    negotiated compression; whatever the server sends itself decodes."""
    server = start(daphne, kind, COMPRESSION=True)
    client = await RawClient.open(
        server.port, offer="permessage-deflate; client_max_window_bits"
    )
    assert client.extensions is not None
    assert (await client.message())[2]["type"] == "rt.welcome"
    await client.subscribe("public.small")
    client.send_json(
        {"type": "test.say", "data": {"group": "public.small", "text": "hi"}}
    )
    compressed, _, message = await client.event("test.say")
    assert message["data"]["text"] == "hi"
    assert not compressed
    client.close()


@pytest.mark.parametrize("kind", ["daphne", "uvicorn", "uvicorn-legacy"])
async def test_a_deflating_client_library_reads_every_event(daphne, kind):
    """The websockets library (which offers permessage-deflate like browsers do)
    decodes events, replies and pings, many in a row."""
    server = start(daphne, kind, COMPRESSION=True)
    reader = await Client.open(f"{server.url}/ws/", compression="deflate")
    writer = await Client.open(f"{server.url}/ws/", compression="deflate")
    assert [type(e).__name__ for e in reader.ws.protocol.extensions] == [
        "PerMessageDeflate"
    ]
    # Negotiated by realtime: the server keeps no context between messages (with
    # --ws websockets, uvicorn's own negotiation and per-socket compression stay).
    shared = reader.ws.protocol.extensions[0].remote_no_context_takeover
    assert shared == (kind != "uvicorn-legacy")
    for client in (reader, writer):
        ack = await client.request("rt.subscribe", {"group": "public.lib"})
        assert ack["type"] == "rt.ack"
    texts = [f"{n}:{TEXT[: 25 * n]}".strip() for n in range(30)]  # below the rate limit
    for text in texts:
        await writer.request("test.say", {"group": "public.lib", "text": text})
    for text in texts:
        event = await reader.next_event()
        assert event["data"]["text"] == text
    await reader.close()
    await writer.close()


@pytest.mark.parametrize("kind", ["daphne", "uvicorn", "uvicorn-legacy"])
async def test_a_deflate_bomb_is_closed_with_1009(daphne, kind):
    """A compressed client message inflating past MAX_FRAME_BYTES is refused."""
    server = start(daphne, kind, COMPRESSION=True)
    bomb = '{"type":"test.echo","data":{"text":"' + "a" * (4 << 20) + '"}}'
    async with connect(
        f"{server.url}/ws/", compression="deflate", open_timeout=10, ping_interval=None
    ) as ws:
        assert [type(e).__name__ for e in ws.protocol.extensions] == [
            "PerMessageDeflate"
        ]
        await asyncio.wait_for(ws.recv(), 5)  # rt.welcome
        with pytest.raises(ConnectionClosed) as closed:
            await ws.send(bomb)
            while True:
                await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_off_by_default_leaves_the_server_as_it_was(daphne, kind):
    server = start(daphne, kind)
    client = await RawClient.open(
        server.port, offer="permessage-deflate; client_max_window_bits"
    )
    if kind == "daphne":
        assert client.extensions is None  # daphne negotiates nothing
    else:
        assert "server_no_context_takeover" not in (client.extensions or "")
    client.close()


BROWSER_ORIGIN = "http://allowed.example"
BROWSER_SCRIPT = """async ([url, text]) => {
  const ws = new WebSocket(url);
  const frames = [];
  let wake = null;
  ws.onmessage = (m) => { frames.push(JSON.parse(m.data)); if (wake) wake(); };
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
  const next = async (type) => {
    for (;;) {
      const found = frames.findIndex((f) => f.type === type);
      if (found >= 0) return frames.splice(found, 1)[0];
      await new Promise((ok) => { wake = ok; });
    }
  };
  await next("rt.welcome");
  ws.send(JSON.stringify({type: "rt.subscribe", id: "s", data: {group: "public.b"}}));
  await next("rt.ack");
  ws.send(JSON.stringify({type: "test.say", id: "t", data: {group: "public.b", text}}));
  const event = await next("test.say");
  ws.close();
  return [ws.extensions, event.data.text];
}"""


@pytest.mark.browser
@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_chromium_negotiates_and_reads_shared_frames(daphne, browser, kind):
    server = start(daphne, kind, COMPRESSION=True)
    watcher = await RawClient.open(
        server.port, offer="permessage-deflate; client_max_window_bits"
    )
    assert (await watcher.message())[2]["type"] == "rt.welcome"
    await watcher.subscribe("public.b")
    context = await browser.new_context()
    await context.route(
        f"{BROWSER_ORIGIN}/**",
        lambda route: route.fulfill(body="<html></html>", content_type="text/html"),
    )
    page = await context.new_page()
    await page.goto(f"{BROWSER_ORIGIN}/")
    extensions, text = await page.evaluate(BROWSER_SCRIPT, [f"{server.url}/ws/", TEXT])
    await context.close()
    assert "permessage-deflate" in extensions
    assert "server_no_context_takeover" in extensions
    assert text == TEXT
    compressed, _, message = await watcher.event("test.say")
    assert compressed and message["data"]["text"] == TEXT  # the frame Chromium read
    watcher.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def idle_kib_per_socket(server, offer: str | None, count: int) -> float:
    """RSS added per idle socket that received its welcome, subscribed (a message
    the server inflates) and was acknowledged."""
    warm = await RawClient.open(server.port, offer=offer)
    await warm.message()
    await warm.subscribe("public.idle")
    before = rss_kib(server.proc.pid)
    clients = []
    for _ in range(count):
        client = await RawClient.open(server.port, offer=offer)
        assert (client.extensions is not None) == (offer is not None)
        clients.append(client)
    for client in clients:
        await client.message()  # rt.welcome
        await client.subscribe("public.idle")
    grown = (rss_kib(server.proc.pid) - before) / count
    for client in [warm, *clients]:
        client.close()
    return grown


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_a_compressed_idle_socket_costs_about_what_a_plain_one_does(daphne, kind):
    """No zlib state is kept per idle socket (a compressor with zlib's defaults
    would add over 200 KiB each)."""
    plain = await idle_kib_per_socket(start(daphne, kind, COMPRESSION=True), None, 300)
    offer = "permessage-deflate; client_max_window_bits"
    deflating = await idle_kib_per_socket(
        start(daphne, kind, COMPRESSION=True), offer, 300
    )
    print(f"{kind}: {plain:.1f} KiB plain, {deflating:.1f} KiB deflating per socket")
    assert deflating < plain + 8


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_a_client_asking_for_a_smaller_window_still_reads_every_event(
    daphne, kind
):
    """The shared frames use a 4 KiB window: a client that allows the server less
    gets the events compressed by the server itself, or plain, never frames it
    cannot decode."""
    server = start(daphne, kind, COMPRESSION=True)
    offer = "permessage-deflate; server_max_window_bits=9; client_max_window_bits"
    client = await RawClient.open(server.port, offer=offer)
    assert (await client.message())[2]["type"] == "rt.welcome"
    await client.subscribe("public.window")
    client.send_json(
        {"type": "test.say", "data": {"group": "public.window", "text": TEXT}}
    )
    _, raw, message = await client.event("test.say")
    assert message["data"]["text"] == TEXT
    if raw[0] & 0x40:  # compressed: the window the client allowed was respected
        payload = raw[4:] if raw[1] & 0x7F == 126 else raw[2:]
        zlib.decompressobj(-9).decompress(payload + b"\x00\x00\xff\xff")
    client.close()
