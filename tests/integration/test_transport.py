"""realtime.transport: frames held for the end of the loop turn, and the switch that sends
every frame through the server's own ASGI send instead."""

import asyncio
import contextlib
import socket

import orjson
import pytest
import uvicorn
from django.test import override_settings
from websockets.asyncio.client import connect

import realtime
from realtime import transport
from realtime.hub import get_hub, shutdown_hub
from realtime.transport.uvicorn import UvicornWriter
from tests.asgi import application


class Recorder(transport.DirectWriter):
    """A writer to an in-memory connection (the flush logic is the base class's)."""

    __slots__ = ("broken", "written")

    def __init__(self, loop, *, broken=False):
        super().__init__(None, loop)
        self.written: list[bytes] = []
        self.broken = broken

    def writable(self, frame):
        return True

    def still_open(self):
        return True

    def write(self, data):
        if self.broken:
            raise OSError("connection reset")
        self.written.append(data)


async def next_turns(n=3):
    for _ in range(n):
        await asyncio.sleep(0)


async def test_frames_of_one_turn_are_written_at_once():
    loop = asyncio.get_running_loop()
    writer = Recorder(loop)
    assert writer(b"a") and writer(b"b")
    assert writer.written == []
    await next_turns()
    assert writer.written == [b"ab"]


async def test_a_writer_that_raises_does_not_hold_the_others_frames(caplog):
    loop = asyncio.get_running_loop()
    first, broken, last = Recorder(loop), Recorder(loop, broken=True), Recorder(loop)
    for writer in (first, broken, last):
        writer(b"event-1")
    await next_turns()
    assert first.written == [b"event-1"]
    assert last.written == [b"event-1"], "held until the socket's next ASGI send"
    # The next turn's frames are flushed too: every writer registers again.
    last(b"event-2")
    await next_turns()
    assert last.written == [b"event-1", b"event-2"]
    assert "connection reset" in caplog.text


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def uvicorn_in_this_loop():
    """uvicorn on the test's own loop, so its connections join this loop's hub."""
    port = free_port()
    config = uvicorn.Config(
        application,
        host="127.0.0.1",
        port=port,
        ws="websockets-sansio",
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # uvicorn < 0.29
    serving = asyncio.ensure_future(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.02)
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        await shutdown_hub()


async def receive(ws, type_):
    async with asyncio.timeout(5):
        while True:
            frame = orjson.loads(await ws.recv())
            if frame["type"] == type_:
                return frame


@pytest.mark.parametrize("direct", [True, False])
async def test_direct_writes_setting(direct, monkeypatch):
    written = []
    original = UvicornWriter.write

    def spy(self, data):
        written.append(data)
        original(self, data)

    monkeypatch.setattr(UvicornWriter, "write", spy)
    with override_settings(REALTIME={"DIRECT_WRITES": direct}):
        async with uvicorn_in_this_loop() as port:
            # No compression: a compressed connection never takes direct writes.
            url = f"ws://127.0.0.1:{port}/ws/"
            async with connect(url, compression=None) as ws:
                await receive(ws, "rt.welcome")
                await ws.send(
                    orjson.dumps(
                        {
                            "type": "rt.subscribe",
                            "id": "s",
                            "data": {"group": "public.w"},
                        }
                    ).decode()
                )
                await receive(ws, "rt.ack")
                await realtime.anotify("public.w", "test.note", {"text": "hi"})
                event = await receive(ws, "test.note")
                (consumer,) = (await get_hub()).connections
                writer = consumer.outbox._direct
    assert event["data"] == {"text": "hi"}
    if direct:
        assert isinstance(writer, UvicornWriter)
        assert any(b'"text":"hi"' in data for data in written)
    else:
        # Every frame went through uvicorn's own ASGI send.
        assert writer is transport.ASGI_SEND
        assert written == []
