"""Floods and slow clients against a live daphne: memory stays bounded, others unaffected.

RSS is read from /proc/<pid>/status of the daphne process before and after.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from websockets.exceptions import ConnectionClosed

from realtime import status
from tests.support.rtprobe import Heartbeat, rss_kib
from tests.support.wsclient import Client

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]


async def test_500_connections_at_once(daphne):
    server = daphne()
    before = rss_kib(server.proc.pid)
    clients = await asyncio.gather(
        *(Client.open(f"{server.url}/ws/") for _ in range(500))
    )
    assert [c.welcome["type"] for c in clients] == ["rt.welcome"] * 500
    assert len({c.welcome["data"]["connection_id"] for c in clients}) == 500
    # Every one of them is served, not just accepted.
    replies = await asyncio.gather(
        *(c.request("test.echo", {"text": "hi"}, timeout=30) for c in clients)
    )
    assert {r["type"] for r in replies} == {"rt.ack"}
    grown = rss_kib(server.proc.pid) - before
    await asyncio.gather(*(c.close() for c in clients))
    assert grown < 100_000, f"{grown} KiB for 500 connections"
    print(f"500 connections: RSS +{grown} KiB")


async def test_reader_that_stops_is_cut_and_memory_stays_bounded(daphne):
    """A burst of ~12 MB to a group with a client that stopped reading."""
    server = daphne(RATE=100_000.0, BURST=100_000)
    group = "public.burst"
    slow = await Client.open(f"{server.url}/ws/", max_queue=1)
    await slow.request("rt.subscribe", {"group": group})
    fast = await Client.open(f"{server.url}/ws/")
    await fast.request("rt.subscribe", {"group": group})
    sender = await Client.open(f"{server.url}/ws/")
    before = rss_kib(server.proc.pid)
    text, count = "x" * 990, 12_000  # ~12 MB through the server

    async def read_all() -> int:
        got = 0
        while got < count:
            frame = await fast.next_event(timeout=30)
            if frame.get("group") == group:
                got += 1
        return got

    reader = asyncio.create_task(read_all())
    for n in range(count):
        await sender.send(
            {"type": "test.say", "data": {"group": group, "text": text, "n": n}}
        )
        if n % 100 == 0:  # an ack now and then bounds the sender's own backlog
            await sender.request("test.echo", {"text": "sync"}, timeout=30)
    assert await asyncio.wait_for(reader, 120) == count
    grown = rss_kib(server.proc.pid) - before
    print(f"slow reader burst: RSS +{grown} KiB for {count} KB sent")
    frames, code = await slow.closed_with(timeout=30)
    # The server closed it (4507 after rt.error slow_consumer); a reader this far
    # behind may never read the close frame, and then sees the TCP drop (1006).
    assert code in (status.WS_4507_SLOW_CONSUMER, 1006)
    delivered = [f["data"]["n"] for f in frames if f.get("group") == group]
    assert delivered == list(range(len(delivered))) and len(delivered) < count
    # Without the slow-consumer cut, daphne would have buffered all of it for `slow`.
    assert grown < count // 2, f"RSS grew {grown} KiB"
    await fast.close()
    await sender.close()


async def test_inbound_flood_is_closed_4429_and_others_unaffected(daphne):
    server = daphne()  # default limits: RATE 20/s, BURST 40, close after 10 strikes
    before = rss_kib(server.proc.pid)
    with Heartbeat(server.url, interval=0.2) as beat:
        flood = await Client.open(f"{server.url}/ws/")
        frame = '{"type":"test.echo","pad":"' + "f" * 60_000 + '","data":{"text":"f"}}'
        sent, started = 0, time.monotonic()
        try:
            while time.monotonic() - started < 20:
                await flood.ws.send(frame)
                sent += 1
        except ConnectionClosed:
            pass
        elapsed = time.monotonic() - started
        frames, code = await flood.closed_with(timeout=10)
        figures = beat.stop()
    # The server closed it with 4429 (after rt.error rate_limited); a client that
    # only writes may not read the close frame and then sees the TCP drop (1006).
    assert code in (status.WS_4429_RATE_LIMITED, 1006)
    assert elapsed < 15, "the flood was not cut"
    errors = [f["data"]["code"] for f in frames if f["type"] == "rt.error"]
    assert set(errors) <= {"rate_limited"}
    grown = rss_kib(server.proc.pid) - before
    assert grown < 30_000, f"RSS grew {grown} KiB after {sent} frames"
    assert figures["errors"] == [] and figures["missing"] == [], figures
    assert figures["max"] < 2.0, figures
    print(f"inbound flood: {sent} x 60 KB frames, RSS +{grown} KiB, beat {figures}")
