"""1,000 sync notify() calls in a loop, plain and inside ``realtime.batch()``, on a
real redis-server (core and pub/sub layers): a subscribed socket gets every event
once and in order, history holds them with consecutive seqs, and a batch names
every event it could not send."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import redis
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from django.db import transaction

import realtime
from realtime import backends
from realtime.backends import get_backend
from realtime.exceptions import NotifyFailed
from realtime.fastpath import PIPELINE, fast_path
from realtime.settings import realtime_settings
from realtime.testing import RealtimeCommunicator, capture_notifications
from tests.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
GROUP = "public.loop"
COUNT = 1000
LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}


@pytest.fixture(params=sorted(LAYERS))
def redis_url(request, own_redis, settings):
    """channels-redis (core, then pub/sub) and the Redis backend on one server."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": LAYERS[request.param],
            "CONFIG": {"hosts": [own_redis.url]},
        }
    }
    settings.REALTIME = {**settings.REALTIME, "REDIS_URL": own_redis.url}
    channel_layers.backends = {}
    backends.reset()
    realtime_settings.reload()
    assert fast_path(history=True) is not None
    return own_redis.url


async def subscribed(group: str = GROUP) -> RealtimeCommunicator:
    comm = RealtimeCommunicator(application, "/ws/")
    connected, _ = await comm.connect()
    assert connected
    reply = await comm.subscribe(group)
    assert reply["type"] == "rt.ack", reply
    comm.epoch = reply["data"]["epoch"]  # type: ignore[attr-defined]
    return comm


async def events(comm: RealtimeCommunicator, count: int) -> list[dict]:
    """The next ``count`` frames of the group (any rt.reset among them included)."""
    got: list[dict] = []
    while len(got) < count:
        frame = await comm.receive_frame(10)
        if frame["type"] in ("rt.ping", "rt.presence.join"):
            continue
        got.append(frame)
    return got


def send(start: int, count: int, group: str = GROUP) -> None:
    for n in range(start, start + count):
        realtime.notify(group, "test.note", {"text": f"e{n}", "n": n})


def send_batched(start: int, count: int) -> None:
    with realtime.batch():
        send(start, count)


async def assert_delivered_once_in_order(comm: RealtimeCommunicator) -> None:
    frames = await events(comm, COUNT)
    assert [f["type"] for f in frames] == ["test.note"] * COUNT
    assert [f["data"]["n"] for f in frames] == list(range(COUNT))
    assert [f["seq"] for f in frames] == list(range(1, COUNT + 1))
    # Nothing sent twice: the next frame is the one sent after the loop.
    await database_sync_to_async(send)(COUNT, 1)
    (after,) = await events(comm, 1)
    assert (after["data"]["n"], after["seq"]) == (COUNT, COUNT + 1)
    # History holds the same frames, consecutive seqs.
    read = await get_backend().since(GROUP, 1, comm.epoch)  # type: ignore[attr-defined]
    assert read.recovered
    assert [seq for seq, _text in read.frames] == list(range(2, COUNT + 2))
    assert [orjson.loads(text) for _seq, text in read.frames][-2:] == [
        frames[-1],
        after,
    ]


@pytest.mark.parametrize("sender", [send, send_batched], ids=["plain", "batch"])
async def test_a_loop_of_1000_notify_calls_reaches_the_socket_once_in_order(
    redis_url, sender
):
    comm = await subscribed()
    await database_sync_to_async(sender)(0, COUNT)
    await assert_delivered_once_in_order(comm)
    await comm.disconnect()


def batch_in_atomic(*, fail: bool) -> int:
    """A view under ATOMIC_REQUESTS: a batch inside the transaction. Returns how
    many events were published before the transaction ended."""
    with capture_notifications() as captured:
        try:
            with transaction.atomic():
                with realtime.batch():
                    send(0, 3)
                before_commit = len(captured.sent)
                if fail:
                    raise ValueError("roll back")
        except ValueError:
            pass
    return before_commit


async def test_a_batch_inside_a_transaction_leaves_after_commit(redis_url):
    comm = await subscribed()
    assert await database_sync_to_async(batch_in_atomic)(fail=False) == 0
    frames = await events(comm, 3)
    assert [(f["data"]["n"], f["seq"]) for f in frames] == [(0, 1), (1, 2), (2, 3)]
    await comm.disconnect()


async def test_a_batch_rolled_back_sends_nothing(redis_url):
    comm = await subscribed()
    assert await database_sync_to_async(batch_in_atomic)(fail=True) == 0
    await database_sync_to_async(send)(7, 1)  # a marker, after the rollback
    (first,) = await events(comm, 1)
    assert (first["data"]["n"], first["seq"]) == (7, 1)
    await comm.disconnect()


def test_a_batch_names_each_event_it_could_not_send(redis_url):
    """A script error for one event (its history key holds the wrong type) fails
    that event only; the others are sent, in order, with consecutive seqs."""
    client = redis.Redis.from_url(redis_url)
    client.set("rt:meta:{public.broken}", "not a hash")
    with (
        capture_notifications() as sent,
        pytest.raises(NotifyFailed) as raised,
        realtime.batch(),
    ):
        send(0, 2)
        send(2, 1, group="public.broken")
        send(3, 2)
    assert "1 of 5 events of a batch failed" in str(raised.value)
    assert "#2 notify('public.broken', 'test.note')" in str(raised.value)
    assert "WRONGTYPE" in str(raised.value)
    ((index, group, type, _why),) = raised.value.failures
    assert (index, group, type) == (2, "public.broken", "test.note")
    assert [(e["data"]["n"], e["seq"]) for e in sent] == [
        (0, 1),
        (1, 2),
        (3, 3),
        (4, 4),
    ]
    client.close()


def test_a_batch_against_a_stopped_redis_fails_every_event(
    redis_url, own_redis, settings, caplog
):
    send(0, 1)  # a pooled connection, which then goes stale
    own_redis.stop()
    with (
        pytest.raises(NotifyFailed, match="3 of 3 events of a batch failed"),
        realtime.batch(),
    ):
        send(1, 3)
    settings.REALTIME = {**settings.REALTIME, "NOTIFY_FAILURE": "log"}
    realtime_settings.reload()
    with caplog.at_level(logging.WARNING, logger="realtime.notify"), realtime.batch():
        send(4, 2)
    failed = [r.getMessage() for r in caplog.records if "batch: #" in r.getMessage()]
    assert len(failed) == 2 and "#1 notify('public.loop', 'test.note')" in failed[1]


def test_a_connection_closed_by_a_restart_is_replaced_before_a_batch(
    redis_url, own_redis
):
    """Redis restarted (empty) between two batches: the idle connection it closed
    is not used, and every event of the next batch is sent once."""
    with capture_notifications() as sent:
        send_batched(0, 2)
        own_redis.stop()
        own_redis.start()
        send_batched(2, 3)
    # A new epoch after the restart: its seqs start again at 1.
    assert [(e["data"]["n"], e["seq"]) for e in sent] == [
        (0, 1),
        (1, 2),
        (2, 1),
        (3, 2),
        (4, 3),
    ]


async def test_batch_refuses_a_running_event_loop():
    with (
        pytest.raises(RuntimeError, match=r"realtime\.batch\(\) was called"),
        realtime.batch(),
    ):
        pass


def test_capture_records_a_batched_event_once_when_its_commit_sends_it(redis_url):
    with capture_notifications() as captured, transaction.atomic():
        with realtime.batch():
            send(0, 2)
        waiting = [(e["data"]["n"], e["sent"]) for e in captured]
        assert waiting == [(0, False), (1, False)]
    assert [(e["data"]["n"], e["seq"], e["sent"]) for e in captured] == [
        (0, 1, True),
        (1, 2, True),
    ]


@pytest.mark.e2e
def test_loop_benchmark_runs():
    """The loop mode of benchmarks/notify_sync.py runs and checks its deliveries
    (its timings are not asserted)."""
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/notify_sync.py",
            *("--loop", "-n", "50", "--rounds", "2", "--layer", "pubsub"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "with realtime.batch()" in done.stdout


def test_nothing_after_a_cut_in_the_batch_is_sent(redis_url):
    """Redis hangs up in the middle of a batch: the events before the cut were sent,
    the cut one and every later one are reported, and none of them ran."""
    client = redis.Redis.from_url(redis_url)
    # An argument over 1 MB is then a protocol error: Redis answers it and hangs up.
    client.config_set("proto-max-bulk-len", 1 << 20)
    client.close()
    count = PIPELINE + 100  # two round trips; the cut is in the first
    with (
        capture_notifications() as sent,
        pytest.raises(NotifyFailed) as raised,
        realtime.batch(),
    ):
        send(0, 2)
        realtime.notify(GROUP, "test.note", {"text": "x" * (1 << 20), "n": 2})
        send(3, count - 3)
    assert [(e["data"]["n"], e["seq"]) for e in sent] == [(0, 1), (1, 2)]
    failures = raised.value.failures
    assert [index for index, *_ in failures] == list(range(2, count))
    assert "Protocol error" in failures[0][3]
    assert "not sent after an earlier part of the batch failed" in failures[-1][3]
    assert f"{count - 2} of {count} events of a batch failed" in str(raised.value)
    # Nothing after the cut ran: the next event gets the next seq.
    with capture_notifications() as after:
        send(9, 1)
    assert [e["seq"] for e in after] == [3]
