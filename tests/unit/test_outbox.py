"""realtime.outbound.Outbox on its own: a fake ASGI send records what the server got."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from django.test import override_settings

from realtime import status
from realtime.exceptions import RealtimeError
from realtime.outbound import Outbox, Writes


class Socket:
    """An ASGI send that records messages; ``gate`` cleared makes it wait (flow
    control, as uvicorn's send does while the socket's buffer is full)."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.closes: list[tuple[str, int]] = []

    async def send(self, message: dict) -> None:
        await self.gate.wait()
        self.messages.append(message)

    async def close(self, error: RealtimeError, code: int) -> None:
        self.closes.append((error.code, code))

    @property
    def texts(self) -> list[str]:
        return [m["text"] for m in self.messages]

    def frames(self) -> list[dict]:
        """The JSON frames written (the filler texts of some tests left out)."""
        return [orjson.loads(text) for text in self.texts if text.startswith("{")]


def outbox_for(socket: Socket) -> Outbox:
    return Outbox(socket.send, close=socket.close, connection_id="c1")


def write_event(outbox: Outbox, text: str, message: dict | None = None) -> None:
    # What the hub's push does with an event for this socket.
    if outbox.write(text, message):
        outbox.too_slow()


async def test_writes_reach_the_server_in_order_without_a_task():
    socket = Socket()
    outbox = outbox_for(socket)
    for n in range(5):
        assert outbox.write(f'{{"n":{n}}}') is False
    # A send that never suspends is finished on the spot: nothing waits on the loop.
    assert socket.texts == [f'{{"n":{n}}}' for n in range(5)]
    assert outbox.writer is None
    assert outbox.sent_bytes == sum(len(t) for t in socket.texts)


async def test_frames_behind_a_waiting_send_queue_in_order():
    socket = Socket()
    outbox = outbox_for(socket)
    socket.gate.clear()
    outbox.write('{"n":0}')
    assert outbox.writer is not None  # the suspended send got a writer task
    outbox.write('{"n":1}')
    write_event(outbox, '{"n":2}', {"type": "websocket.send", "text": '{"n":2}'})
    reply = asyncio.ensure_future(outbox.send_frame({"type": "rt.ack", "id": "a"}))
    await asyncio.sleep(0)
    assert socket.messages == [] and not reply.done()  # the reply waits its turn
    socket.gate.set()
    await asyncio.wait_for(reply, 2)
    assert [f.get("n", f.get("type")) for f in socket.frames()] == [0, 1, 2, "rt.ack"]
    assert outbox.writer is None


async def test_send_text_waits_until_its_frame_left():
    socket = Socket()
    outbox = outbox_for(socket)
    socket.gate.clear()
    outbox.write('{"n":0}')
    sending = asyncio.ensure_future(outbox.send_text('{"n":1}'))
    await asyncio.sleep(0.01)
    assert not sending.done()
    socket.gate.set()
    await asyncio.wait_for(sending, 2)
    assert socket.texts == ['{"n":0}', '{"n":1}']


@override_settings(REALTIME={"MAX_PENDING_BYTES": 1000})
async def test_unacknowledged_bytes_past_the_limit_close_with_4507_once():
    socket = Socket()
    outbox = outbox_for(socket)
    socket.gate.clear()  # nothing leaves, nothing is acknowledged
    event = '{"type":"x","data":"' + "a" * 90 + '"}'
    for _ in range(20):
        write_event(outbox, event)
    await asyncio.sleep(0)
    assert outbox.state is Writes.SLOW
    assert socket.closes == [("slow_consumer", status.WS_4507_SLOW_CONSUMER)]
    # What was queued behind the stalled send is dropped (recovered from history
    # after the close), and the close is asked for once.
    socket.gate.set()
    await asyncio.sleep(0.01)
    assert len(socket.messages) == 1  # only the send already under way
    assert socket.closes == [("slow_consumer", status.WS_4507_SLOW_CONSUMER)]


@override_settings(REALTIME={"MAX_PENDING_BYTES": 1000})
async def test_a_reply_past_the_limit_closes_from_the_replying_task():
    socket = Socket()
    outbox = outbox_for(socket)
    await outbox.send_text("x" * 1001)
    assert socket.closes == [("slow_consumer", status.WS_4507_SLOW_CONSUMER)]
    assert outbox.state is Writes.SLOW


@override_settings(REALTIME={"MAX_PENDING_BYTES": 1000})
async def test_a_ping_follows_each_quarter_of_the_limit():
    socket = Socket()
    outbox = outbox_for(socket)
    for _ in range(2):
        outbox.write("y" * 100)
    assert [f for f in socket.texts if "rt.ping" in f] == []
    outbox.write("y" * 100)  # 300 bytes since the last ping: over 1000 // 4
    ping = socket.frames()[-1]
    assert ping["type"] == "rt.ping"
    assert len(ping["data"]["nonce"]) >= 16
    assert outbox.ping_bytes == 300
    outbox.write("y" * 100)
    assert len(socket.frames()) == 1
    outbox.write("y" * 100)  # the ping's own bytes count: 255 since that ping
    assert [f["type"] for f in socket.frames()] == ["rt.ping", "rt.ping"]


@override_settings(REALTIME={"MAX_PENDING_BYTES": 1000})
async def test_only_the_echoed_nonce_acknowledges_what_was_sent_before_it():
    socket = Socket()
    outbox = outbox_for(socket)
    outbox.write("z" * 100)
    outbox.ping()
    first = socket.frames()[-1]["data"]["nonce"]
    outbox.write("z" * 100)
    outbox.ping()
    second = socket.frames()[-1]["data"]["nonce"]
    outbox.pong({"nonce": "guessed"})
    outbox.pong({"nonce": 5})  # not a string: ignored, no error
    outbox.pong({})
    assert outbox.acked_bytes == 0
    outbox.pong({"nonce": second})  # answers the first ping too
    assert outbox.acked_bytes == outbox.ping_bytes > 200
    acked = outbox.acked_bytes
    outbox.pong({"nonce": first})  # already answered: replayed, acknowledges nothing
    assert outbox.acked_bytes == acked


@override_settings(REALTIME={"MAX_PENDING_BYTES": 1000})
async def test_acknowledged_bytes_keep_a_fast_client_open():
    socket = Socket()
    outbox = outbox_for(socket)
    for _ in range(50):  # 5 times the limit, acknowledged as it goes
        write_event(outbox, "w" * 100)
        if socket.texts[-1].startswith('{"type":"rt.ping"'):
            outbox.pong(socket.frames()[-1]["data"])
    assert outbox.state is Writes.OPEN
    assert socket.closes == []


async def test_close_while_writing_lets_queued_frames_leave_first():
    socket = Socket()
    outbox = outbox_for(socket)
    socket.gate.clear()
    outbox.write('{"n":0}')
    outbox.write('{"n":1}')
    outbox.closing()
    error = asyncio.ensure_future(outbox.send_error(RealtimeError("bye", code="x")))
    finishing = asyncio.ensure_future(outbox.finish(timeout=2))
    await asyncio.sleep(0)
    socket.gate.set()
    await asyncio.wait_for(asyncio.gather(error, finishing), 3)
    outbox.close()
    outbox.write('{"n":2}')  # after the close: never written
    await asyncio.sleep(0)
    frames = socket.frames()
    assert [f.get("n", f.get("type")) for f in frames] == [0, 1, "rt.error"]
    assert frames[-1]["data"] == {"code": "x", "message": "bye"}
    assert outbox.state is Writes.CLOSED


async def test_finish_gives_up_on_a_stuck_socket():
    socket = Socket()
    outbox = outbox_for(socket)
    socket.gate.clear()
    outbox.write('{"n":0}')
    outbox.closing()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await outbox.finish(timeout=0.2)
    assert 0.15 < loop.time() - started < 2
    assert outbox.writer is not None  # still stuck; the close goes out regardless
    outbox.close()
    socket.gate.set()
    await asyncio.wait_for(outbox.writer, 2)


@override_settings(REALTIME={"MAX_PENDING_BYTES": 100})
async def test_closing_writes_are_not_watched():
    # The rt.error before a close may go over the limit: it must not close again.
    socket = Socket()
    outbox = outbox_for(socket)
    outbox.closing()
    assert outbox.write("e" * 500) is False
    await outbox.send_text("e" * 500)
    assert socket.closes == []
    assert "rt.ping" not in "".join(socket.texts)


async def test_a_send_that_fails_mid_write_is_logged_not_raised(caplog):
    caplog.set_level(logging.INFO, logger="realtime.outbound")
    socket = Socket()
    outbox = outbox_for(socket)

    async def broken(message: dict) -> None:
        await asyncio.sleep(0)
        raise OSError("socket gone")

    outbox.send = broken
    outbox.write('{"n":0}')
    outbox.write('{"n":1}')  # queued behind the failing send, then dropped
    await asyncio.wait_for(outbox.writer, 2)
    assert outbox.writer is None
    assert "send failed" in caplog.text


@pytest.mark.parametrize("direct", [True, False])
async def test_the_event_frame_is_only_a_hint_for_a_plain_asgi_send(direct):
    # A plain ASGI send (not a server the wire writers know) gets the shared ASGI
    # message: the frame bytes are only for the direct writers.
    socket = Socket()
    outbox = outbox_for(socket)
    message = {"type": "websocket.send", "text": '{"n":0}'}
    with override_settings(REALTIME={"DIRECT_WRITES": direct}):
        outbox.write('{"n":0}', message, b"\x81\x07" + b'{"n":0}')
    assert socket.messages == [message]
    assert socket.messages[0] is message
