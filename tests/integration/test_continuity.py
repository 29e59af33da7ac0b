"""The server keeps each subscribed group's seqs continuous within one epoch.

A gap (a lost layer message) is filled from history before anything later is
written; a new epoch, or history that no longer covers a gap, is announced with
``rt.reset`` before the events that follow. Driven through Channels' communicator
with the memory backend; the layer is bypassed by calling the hub like the layer
would, so each loss is exact.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from channels.layers import get_channel_layer

import realtime
from realtime import backends
from realtime.backends.memory import _Log
from realtime.frames import EventFrame
from realtime.hub import get_hub
from realtime.live import Event
from realtime.testing import RealtimeCommunicator
from tests.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

GROUP = "public.gaps"


async def connect():
    comm = RealtimeCommunicator(application, "/ws/")
    connected, _ = await comm.connect()
    assert connected
    return comm


async def stored(n: int, *, live: bool) -> int:
    """Append event ``n`` to history; deliver it live only if ``live``."""
    frame = EventFrame(GROUP, "test.note", {"text": f"e{n}"}, 1)
    seq, epoch = await backends.get_backend().append(GROUP, frame.prefix, frame.suffix)
    if live:
        await (await get_hub()).dispatch(Event(frame.message(seq, epoch)))
    return seq


async def frames_until(comm, count: int) -> list[dict]:
    """Frames of GROUP until ``count`` events arrived (rt.reset included)."""
    out: list[dict] = []
    events = 0
    while events < count:
        frame = await comm.receive_frame(timeout=3)
        if frame.get("group") != GROUP or frame["type"].startswith("rt.presence"):
            continue
        out.append(frame)
        events += not frame["type"].startswith("rt.")
    return out


def shape(frames: list[dict]) -> list:
    return [
        ("reset", f["data"]["reason"], f["data"]["seq"])
        if f["type"] == "rt.reset"
        else f["data"]["text"]
        for f in frames
    ]


async def test_a_lost_live_event_is_filled_from_history_before_the_next():
    comm = await connect()
    await comm.subscribe(GROUP)
    await stored(0, live=True)
    await stored(1, live=False)  # lost on the way
    await stored(2, live=False)
    await stored(3, live=True)
    assert shape(await frames_until(comm, 4)) == ["e0", "e1", "e2", "e3"]
    await comm.disconnect()


async def test_duplicates_are_dropped_and_order_kept_when_the_gap_closes_late():
    comm = await connect()
    await comm.subscribe(GROUP)
    hub = await get_hub()
    events = []
    for n in range(3):
        frame = EventFrame(GROUP, "test.note", {"text": f"e{n}"}, 1)
        seq, epoch = await backends.get_backend().append(
            GROUP, frame.prefix, frame.suffix
        )
        events.append(frame.message(seq, epoch))
    # 3 arrives first, then 2 and 1 late, then 1 again.
    for message in (events[2], events[0], events[1], events[0]):
        await hub.dispatch(Event(message))
    await stored(3, live=True)
    assert shape(await frames_until(comm, 4)) == ["e0", "e1", "e2", "e3"]
    await asyncio.sleep(0)
    assert comm.events == []
    await comm.disconnect()


async def test_a_new_epoch_is_announced_and_its_events_are_not_filtered(caplog):
    """History restarted (Redis restarted empty): seqs 1.. again under a new
    epoch. The connected socket is told, then gets every event of the new epoch."""
    comm = await connect()
    ack = await comm.subscribe(GROUP)
    for n in range(3):
        await stored(n, live=True)
    assert shape(await frames_until(comm, 3)) == ["e0", "e1", "e2"]
    old = backends.get_backend().logs[GROUP].epoch
    backends.get_backend().logs[GROUP] = _Log()  # the store starts over
    caplog.set_level(logging.WARNING)
    await stored(10, live=False)  # seq 1 of the new epoch, lost live
    await stored(11, live=True)  # seq 2
    frames = await frames_until(comm, 2)
    assert shape(frames) == [("reset", "epoch_changed", 0), "e10", "e11"]
    assert frames[0]["data"]["epoch"] not in (old, ack["data"]["epoch"])
    assert [f["seq"] for f in frames[1:]] == [1, 2]
    assert "rt.reset" in caplog.text and GROUP in caplog.text
    await comm.disconnect()


async def test_a_gap_history_no_longer_covers_is_announced(settings):
    settings.REALTIME = {**settings.REALTIME, "HISTORY_SIZE": 2}
    comm = await connect()
    await comm.subscribe(GROUP)
    await stored(0, live=True)
    for n in range(1, 5):
        await stored(n, live=False)  # 2..5: only 4 and 5 are kept
    await stored(5, live=True)  # seq 6
    # Like a subscribe with recovered: false, the reset carries the group's
    # position (6): refetch the state, then events continue after it.
    assert shape(await frames_until(comm, 1)) == ["e0"]
    reset = await comm.receive_frame()
    assert shape([reset]) == [("reset", "history_trimmed", 6)]
    await stored(6, live=True)  # seq 7
    assert shape(await frames_until(comm, 1)) == ["e6"]
    await comm.disconnect()


async def test_stale_epoch_and_future_since_get_documented_answers():
    comm = await connect()
    await comm.subscribe(GROUP)
    for n in range(3):
        await stored(n, live=True)
    await frames_until(comm, 3)
    await comm.request("rt.unsubscribe", {"group": GROUP})
    stale = await comm.subscribe(GROUP, since=2, epoch="not-the-epoch")
    assert stale["type"] == "rt.ack" and stale["data"]["recovered"] is False
    await comm.request("rt.unsubscribe", {"group": GROUP})
    future = await comm.subscribe(GROUP, since=10**9)
    assert future["type"] == "rt.ack" and future["data"]["recovered"] is False
    assert future["data"]["seq"] == 3
    bad = await comm.subscribe(GROUP, since=1, epoch=["x"])
    assert bad["type"] == "rt.error" and bad["data"]["code"] == "bad_envelope"
    await comm.disconnect()


async def test_in_memory_layer_takes_a_burst_bigger_than_its_capacity():
    """The embedded default: 1,000 anotify() calls in one turn reach the socket
    (the in-memory layer's channels hold 100 messages and drop the rest)."""
    assert get_channel_layer().capacity < 1000
    comm = await connect()
    await comm.subscribe(GROUP)
    for n in range(1000):
        await realtime.anotify(GROUP, "test.note", {"text": f"e{n}"})
    frames = await frames_until(comm, 1000)
    assert shape(frames) == [f"e{n}" for n in range(1000)]
    await comm.disconnect()
