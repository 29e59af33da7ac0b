"""The fan-out benchmark keeps working, and the fast path it measures keeps its promises.

The smoke run is seconds long with tiny numbers: it checks the harness (servers,
load clients, baseline, peers, recovery), not performance.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

import realtime
from realtime.hub import get_hub
from realtime.testing import RealtimeCommunicator
from tests.asgi import application
from tests.support.processes import ROOT


@pytest.mark.e2e
def test_fanout_benchmark_smoke(tmp_path):
    out = tmp_path / "fanout.json"
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/fanout.py",
            *("--connections", "20", "--rate", "20", "--duration", "1"),
            *("--drain", "10", "--processes", "2", "--clients", "2"),
            *("--baselines", "pubsub", "--peers", "socketio,node"),
            *("--recovery", "100", "--json", str(out)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| deliveries/s |" in done.stdout
    report = json.loads(out.read_text())
    results = report["scenarios"]["custom"]
    assert [r["stack"] for r in results] == [
        "realtime (pubsub)",
        "channels (pubsub)",
        "python-socketio (uvicorn)",
        "node ws",
    ]
    for result in results:
        assert result["connected"] == 20, result["stack"]
        assert result["deliveries"] == result["expected"] == 20 * 20
        assert result["dups"] == result["reordered"] == 0
        assert result["cpu_us"] > 0 and result["rss_per_conn_kb"] is not None
    recovery = report["recovery"]
    assert recovery["recovered"] and recovery["in_order_once"]


# -- the fan-out fast path ----------------------------------------------------------


async def _subscribed(group: str) -> RealtimeCommunicator:
    comm = RealtimeCommunicator(application, "/ws/")
    connected, _ = await comm.connect()
    assert connected
    await comm.subscribe(group)
    return comm


@pytest.mark.django_db(transaction=True)
async def test_a_send_that_suspends_does_not_hold_up_the_others():
    # uvicorn's send waits while a socket's buffer is full; the hub must go on
    # with every other socket and the slow one must still get every event in order.
    group = "public.stall"
    slow, fast = await _subscribed(group), await _subscribed(group)
    hub = await get_hub()
    slow_id = slow.welcome["data"]["connection_id"]
    slow_consumer = next(c for c in hub.connections if c.connection_id == slow_id)
    gate = asyncio.Event()
    server_send = slow_consumer.outbox.send

    async def blocked_send(message: dict) -> None:
        await gate.wait()
        await server_send(message)

    slow_consumer.outbox.send = blocked_send
    for n in range(5):
        await realtime.anotify(group, "test.note", {"text": "t", "n": n})
    got = [(await fast.receive_frame(1))["data"]["n"] for _ in range(5)]
    assert got == [0, 1, 2, 3, 4]
    assert slow_consumer.outbox.writer is not None  # the stalled send has a writer task
    gate.set()
    got = [(await slow.receive_frame(1))["data"]["n"] for _ in range(5)]
    assert got == [0, 1, 2, 3, 4]
    # Replies queue behind the events they follow, and the writer goes away.
    reply = await slow.request("test.echo", {"text": "after"})
    assert reply["type"] == "rt.ack"
    assert slow_consumer.outbox.writer is None
    await slow.disconnect()
    await fast.disconnect()


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_text_frame_is_what_autobahn_sends(size):
    # daphne's sockets get these bytes straight from realtime.transport: they must be
    # exactly what autobahn would have written for the same text.
    from autobahn.twisted.websocket import (
        WebSocketServerFactory,
        WebSocketServerProtocol,
    )
    from twisted.internet.testing import StringTransport

    from realtime.transport import text_frame

    factory = WebSocketServerFactory()
    factory.protocol = WebSocketServerProtocol
    factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(StringTransport())
    protocol.state = protocol.STATE_OPEN
    protocol.transport.clear()
    text = "é" * (size // 2) + "x" * (size % 2)  # ``size`` bytes of UTF-8
    protocol.sendMessage(text.encode(), isBinary=False)
    assert text_frame(text) == protocol.transport.value()


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_text_frame_is_what_uvicorn_sends(size):
    # The same for uvicorn's default WebSocket protocol (websockets, sans-I/O).
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    from realtime.transport import text_frame

    conn = ServerProtocol()
    conn.state = State.OPEN
    text = "é" * (size // 2) + "x" * (size % 2)
    conn.send_text(text.encode())
    assert text_frame(text) == b"".join(conn.data_to_send())
