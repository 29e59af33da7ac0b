"""End to end: limits and their close codes on a real daphne process."""

from __future__ import annotations

import asyncio
import signal
import time

import orjson
import pytest

from realtime import status
from tests.support.wsclient import Client

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

LIMITS = {
    "HEARTBEAT_INTERVAL": 0.5,
    "HEARTBEAT_TIMEOUT": 1.5,
    "MAX_INVALID_FRAMES": 5,
    "MAX_PENDING_BYTES": 65536,
    "RATE": 1000.0,
    "BURST": 1000,
}


@pytest.fixture(scope="module")
def server(daphne_module, module_redis):
    return daphne_module(redis_url=module_redis, **LIMITS)


async def test_silent_client_is_closed_4408(server):
    # Timed from before the handshake: the server's clock for this connection starts
    # after it, so at least HEARTBEAT_TIMEOUT (1.5 s) must pass before the close.
    started = time.monotonic()
    client = await Client.open(f"{server.url}/ws/", answer_pings=False)
    frames, code = await client.closed_with(timeout=5)
    assert code == status.WS_4408_HEARTBEAT_TIMEOUT
    assert [f["type"] for f in frames[:-1]] == ["rt.ping"] * (len(frames) - 1)
    assert frames[-1]["data"]["code"] == "heartbeat_timeout"
    assert 1.5 <= time.monotonic() - started < 5


async def test_client_answering_pings_stays(server):
    client = await Client.open(f"{server.url}/ws/", answer_pings=False)
    started = time.monotonic()
    pings = 0
    while pings < 6:  # 6 pings at 0.5 s: twice the 1.5 s timeout
        frame = await client.recv(timeout=2)
        assert frame["type"] == "rt.ping"
        pings += 1
        await client.pong(frame)
    assert time.monotonic() - started > 2.0  # five intervals at least
    client.answer_pings = True
    assert (await client.request("test.echo", {"text": "alive"}))["type"] == "rt.ack"
    await client.close()


async def test_protocol_abuse_closes_4400(server):
    client = await Client.open(f"{server.url}/ws/")
    for _ in range(5):
        await client.ws.send("{not json")
    frames, code = await client.closed_with()
    assert [f["data"]["code"] for f in frames] == ["bad_json"] * 5 + ["bad_envelope"]
    assert code == status.WS_4400_PROTOCOL_ABUSE


async def test_slow_reader_is_closed_4507_and_others_keep_receiving(server):
    # max_queue=1: the client library stops reading the socket after one frame,
    # like a client whose tab is frozen or whose network is too slow.
    slow = await Client.open(f"{server.url}/ws/", max_queue=1)
    await slow.request("rt.subscribe", {"group": "public.burst"})
    fast = await Client.open(f"{server.url}/ws/")
    await fast.request("rt.subscribe", {"group": "public.burst"})

    async def read_fast() -> list[int]:
        return [(await fast.next_event())["data"]["n"] for _ in range(120)]

    reader = asyncio.create_task(read_fast())  # a healthy client reads as it goes
    sender = await Client.open(f"{server.url}/ws/")
    text = "x" * 900
    for n in range(120):  # ~110 KB: past the 64 KiB limit
        reply = await sender.request(
            "test.say", {"group": "public.burst", "text": text, "n": n}
        )
        assert reply["type"] == "rt.ack"
    assert await asyncio.wait_for(reader, 10) == list(range(120))
    frames, code = await slow.closed_with(timeout=10)
    assert code == status.WS_4507_SLOW_CONSUMER
    # The server queued rt.error slow_consumer before the close, but a reader this far
    # behind may lose the unread tail when the server drops the connection.
    errors = [f["data"]["code"] for f in frames if f["type"] == "rt.error"]
    assert errors in ([], ["slow_consumer"])
    delivered = [f["data"]["n"] for f in frames if f["type"] == "test.say"]
    assert delivered == list(range(len(delivered)))  # in order, no gaps, then cut
    assert len(delivered) < 120
    await fast.close()
    await sender.close()


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_ping_follows_the_bytes_it_vouches_for(daphne, module_redis, kind):
    """The ping written once MAX_PENDING_BYTES / 4 more bytes went out must reach
    the client after those bytes, though group events are written straight to
    the socket at the end of the loop turn and the ping through the server:
    otherwise its pong would vouch for frames the client has not read yet."""
    limit = 65536
    # A burst above the 60 messages sent at once: none of them may be refused,
    # however fast the sender is.
    server = daphne(
        redis_url=module_redis,
        server=kind,
        MAX_PENDING_BYTES=limit,
        RATE=1000.0,
        BURST=100,
    )
    # No permessage-deflate (uvicorn would negotiate it): compressed connections
    # are written through the server.
    reader = await Client.open(
        f"{server.url}/ws/", answer_pings=False, compression=None
    )
    await reader.send(
        {"type": "rt.subscribe", "id": "s", "data": {"group": "public.p"}}
    )
    ack = await asyncio.wait_for(reader.ws.recv(), 5)
    assert '"rt.ack"' in ack
    sender = await Client.open(f"{server.url}/ws/")
    for _ in range(60):  # ~58 KB: three pings' worth
        await sender.send(
            {"type": "test.say", "data": {"group": "public.p", "text": "x" * 900}}
        )
    # The server's count, replayed over what arrived: every frame's text, from the
    # welcome on; a ping is due once more than limit // 4 went out since the last.
    sent = len(orjson.dumps(reader.welcome)) + len(ack)
    last_ping, pings, events = 0, 0, 0
    while events < 60:
        raw = await asyncio.wait_for(reader.ws.recv(), 5)
        if raw.startswith('{"type":"rt.ping"'):
            assert sent - last_ping > limit // 4, "the ping overtook the bytes"
            last_ping, pings = sent, pings + 1
            await reader.pong(orjson.loads(raw))
        else:
            assert '"type":"test.say"' in raw
            events += 1
        sent += len(raw)
    assert pings >= 3
    await reader.close()
    await sender.close()


async def test_rate_limit_closes_4429(daphne):
    server = daphne(RATE=2.0, BURST=2, RATE_LIMIT_CLOSE_AFTER=3)
    client = await Client.open(f"{server.url}/ws/")
    for _ in range(6):
        await client.send({"type": "test.echo", "data": {"text": "flood"}})
    frames, code = await client.closed_with()
    codes = [f.get("data", {}).get("code") for f in frames if f["type"] == "rt.error"]
    assert codes == ["rate_limited"] * 3
    assert code == status.WS_4429_RATE_LIMITED
    # Another connection on the same process is unaffected.
    other = await Client.open(f"{server.url}/ws/")
    assert (await other.request("test.echo", {"text": "calm"}))["type"] == "rt.ack"
    await other.close()


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_shutdown_closes_4503(daphne, kind):
    server = daphne(server=kind)
    client = await Client.open(f"{server.url}/ws/")
    server.proc.send_signal(signal.SIGTERM)
    frames, code = await client.closed_with()
    assert frames[-1]["data"]["code"] == "shutting_down"
    assert code == status.WS_4503_SHUTTING_DOWN
    server.proc.wait(10)


async def _refused(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), 5
        )
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_a_stopping_process_refuses_new_connections(daphne, kind):
    server = daphne(server=kind)
    client = await Client.open(f"{server.url}/ws/")
    assert (await client.request("rt.subscribe", {"group": "public.slow-leave"}))[
        "type"
    ] == "rt.ack"
    assert not await _refused(server.port)
    server.proc.send_signal(signal.SIGTERM)
    _, code = await client.closed_with()
    assert code == status.WS_4503_SHUTTING_DOWN
    # Still closing (the slow leave holds it for seconds), no longer listening.
    assert await _refused(server.port)
    assert server.proc.poll() is None
    server.proc.wait(15)
