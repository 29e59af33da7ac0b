"""Faults: a daphne killed mid-stream, Redis down and back, graceful shutdown.

Real daphne processes and a redis-server of the test's own (so stopping it touches no
other test). The tests are sync and drive their WebSocket clients on a private loop,
so they may call the sync ``notify()`` like a view would.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
import redis
from channels.layers import channel_layers
from websockets.exceptions import ConnectionClosed

import realtime
from realtime import backends
from realtime.exceptions import NotifyFailed, Unavailable
from realtime.settings import realtime_settings
from tests.support.wsclient import Client

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

OUTAGE = 3.0  # seconds Redis stays down


@pytest.fixture
def layer_on(settings, own_redis):
    """This test process publishes through channels-redis on ``own_redis``."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [own_redis.url]},
        }
    }
    settings.REALTIME = {**settings.REALTIME, "NOTIFY_TIMEOUT": 1.0}
    channel_layers.backends = {}
    backends.reset()
    realtime_settings.reload()
    return own_redis


async def _wait_event(client: Client, group: str, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            frame = await client.next_event(timeout=deadline - time.monotonic())
        except TimeoutError:
            return False
        if frame.get("group") == group and frame["data"].get("text") == text:
            return True
    return False


def test_redis_outage(daphne, layer_on, loop, settings, django_user_model):
    """notify() fails fast while Redis is down, persisted rows survive, and the
    server's existing subscriptions work again once Redis is back."""
    server = daphne(redis_url=layer_on.url, RATE=1000.0, BURST=1000)
    group = "public.outage"
    listener = loop.run_until_complete(Client.open(f"{server.url}/ws/"))
    ack = loop.run_until_complete(listener.request("rt.subscribe", {"group": group}))
    assert ack["type"] == "rt.ack"
    realtime.notify(group, "test.note", {"text": "before"}, on_commit=False)
    assert loop.run_until_complete(_wait_event(listener, group, "before", 5))
    user = django_user_model.objects.create_user("outage-user")

    layer_on.stop()
    try:
        started = time.monotonic()
        with pytest.raises(NotifyFailed) as failed:
            realtime.notify(group, "test.note", {"text": "lost"}, on_commit=False)
        assert time.monotonic() - started < 2.0  # NOTIFY_TIMEOUT is 1 s
        assert group in str(failed.value)
        # What a client sees: a transient failure to retry, no internals.
        assert failed.value.code == "unavailable"
        assert failed.value.detail == Unavailable.default_detail

        started = time.monotonic()
        with pytest.raises(NotifyFailed):
            realtime.notify_user(
                user, "test.note", {"text": "stored"}, persist=True, on_commit=False
            )
        assert time.monotonic() - started < 2.0
        from realtime.inbox.models import Notification

        assert Notification.objects.filter(user=user, type="test.note").count() == 1

        # The other policy: log and return.
        settings.REALTIME = {**settings.REALTIME, "NOTIFY_FAILURE": "log"}
        started = time.monotonic()
        assert (
            realtime.notify(group, "test.note", {"text": "logged"}, on_commit=False)
            is None
        )
        assert time.monotonic() - started < 2.0
        settings.REALTIME = {**settings.REALTIME, "NOTIFY_FAILURE": "raise"}
        # The server keeps serving what needs no Redis while it is down.
        loop.run_until_complete(listener.send({"type": "rt.ping", "id": "p"}))
        reply = loop.run_until_complete(listener.recv())
        assert reply == {"type": "rt.pong", "id": "p", "data": {}}
        time.sleep(OUTAGE)  # the scenario: Redis stays down for a while
    finally:
        layer_on.start()  # same port, empty: memberships are gone

    # The hub notices, rejoins its groups, and the same subscription works again.
    delivered = False
    deadline = time.monotonic() + 20
    n = 0
    while not delivered and time.monotonic() < deadline:
        n += 1
        try:
            realtime.notify(group, "test.note", {"text": f"after-{n}"}, on_commit=False)
        except NotifyFailed:
            time.sleep(0.2)
            continue
        delivered = loop.run_until_complete(
            _wait_event(listener, group, f"after-{n}", 1.0)
        )
    assert delivered, "subscription did not recover after Redis came back"
    # New subscriptions and cross-connection events work too.
    other = loop.run_until_complete(Client.open(f"{server.url}/ws/"))
    ack = loop.run_until_complete(other.request("rt.subscribe", {"group": "public.o2"}))
    assert ack["type"] == "rt.ack"
    realtime.notify("public.o2", "test.note", {"text": "fresh"}, on_commit=False)
    assert loop.run_until_complete(_wait_event(other, "public.o2", "fresh", 5))
    assert server.proc.poll() is None
    assert "channel layer is back" in server.log.read_text()
    loop.run_until_complete(listener.close())
    loop.run_until_complete(other.close())


def test_first_notify_after_a_redis_restart_goes_through_once(layer_on, own_redis):
    """The calling thread's connection dates from before the restart: notify()
    retries once on a fresh one, without an error and without a duplicate, and
    loads its script again (the new server has never seen it)."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from realtime.testing import capture_notifications

    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    key = layer.prefix + layer.non_local_name(channel)
    probe = redis.Redis.from_url(own_redis.url)

    def send(text: str) -> list[dict]:
        async_to_sync(layer.group_add)("public.restart", channel)
        with capture_notifications() as sent:
            realtime.notify(
                "public.restart", "test.note", {"text": text}, on_commit=False
            )
        return sent

    assert send("before")[0]["seq"] == 1
    assert probe.zcard(key) == 1
    own_redis.stop()
    own_redis.start()  # same port, empty
    assert send("after")[0]["seq"] == 1  # a new history on the new server
    assert probe.zcard(key) == 1


async def _follow(urls: list[str], group: str, last_n: int, log: dict) -> list[int]:
    """A client that reconnects to the next server on a drop and resumes with since."""
    seqs: list[int] = []
    last = epoch = None
    url = 0
    while True:
        client = await Client.open(f"{urls[url]}/ws/")
        data = {"group": group}
        if last is not None:
            data |= {"since": last, "epoch": epoch}
        ack = await client.request("rt.subscribe", data)
        assert ack["type"] == "rt.ack" and ack["data"]["recovered"] is True, ack
        if last is None:
            last, epoch = ack["data"]["seq"], ack["data"]["epoch"]
        else:
            log["resumed"] += 1
        try:
            while True:
                frame = await client.next_event(timeout=20)
                if frame.get("group") != group or frame["type"] != "test.say":
                    continue
                seqs.append(frame["seq"])
                last = frame["seq"]
                epoch = epoch or frame.get("epoch")
                if frame["data"]["n"] == last_n:
                    await client.close()
                    return seqs
        except ConnectionClosed:
            url = (url + 1) % len(urls)


def test_sigkill_mid_stream_recovers_exactly_once(daphne, own_redis, loop):
    one = daphne(redis_url=own_redis.url, RATE=1000.0, BURST=1000)
    two = daphne(redis_url=own_redis.url, RATE=1000.0, BURST=1000)
    group, total = "public.killed", 300
    log = {"resumed": 0}

    async def scenario():
        followers = [
            asyncio.create_task(_follow([one.url, two.url], group, total, log))
            for _ in range(6)
        ] + [
            asyncio.create_task(_follow([two.url], group, total, log)) for _ in range(2)
        ]
        await asyncio.sleep(0.5)  # let them subscribe (they need no exact timing)
        sender = await Client.open(f"{two.url}/ws/")
        seqs = []
        for n in range(1, total + 1):
            reply = await sender.request(
                "test.say", {"group": group, "text": "x", "n": n}
            )
            seqs.append(reply["data"]["seq"])
            if n == total // 3:
                one.kill()  # SIGKILL: no close frames, no cleanup
            await asyncio.sleep(0.005)
        results = await asyncio.wait_for(asyncio.gather(*followers), 60)
        await sender.close()
        return seqs, results

    published, results = loop.run_until_complete(scenario())
    assert published == list(range(published[0], published[0] + total))
    for seqs in results:
        # Every event after the subscription, once, in order, across the crash.
        assert seqs == list(range(seqs[0], published[-1] + 1))
        assert seqs[0] <= published[0]
    assert log["resumed"] == 6
    assert two.proc.poll() is None


def test_sigterm_leaves_no_membership_or_presence(daphne, own_redis, loop):
    server = daphne(redis_url=own_redis.url)
    store = redis.Redis.from_url(own_redis.url)
    groups = [f"public.term-{i}" for i in range(5)]

    async def connect():
        clients = []
        for group in groups:
            client = await Client.open(f"{server.url}/ws/")
            assert (await client.request("rt.subscribe", {"group": group}))[
                "type"
            ] == "rt.ack"
            clients.append(client)
        return clients

    clients = loop.run_until_complete(connect())
    for group in groups:
        assert store.zcard(f"asgi:group:{group}") == 1
        assert store.zcard(f"rt:pc:{{{group}}}") == 1
    server.proc.send_signal(signal.SIGTERM)

    async def closes():
        return await asyncio.gather(*(client.closed_with() for client in clients))

    codes = loop.run_until_complete(closes())
    assert {code for _frames, code in codes} == {4503}
    server.proc.wait(10)
    for group in groups:
        assert store.zcard(f"asgi:group:{group}") == 0, group
        assert store.zcard(f"rt:pc:{{{group}}}") == 0, group
    leftovers = [
        key.decode()
        for key in store.scan_iter()
        # rt:reign: one small marker per server (docs/topologies.md, Sentinel)
        if not key.startswith((b"rt:log:", b"rt:meta:", b"rt:proc", b"rt:reign"))
    ]
    # rt:pgroups is only an index for the presence sweep: it may still name these
    # groups (their entries expire and any live process's next sweep drops them),
    # but no connection is listed anywhere.
    assert [k for k in leftovers if k != "rt:pgroups"] == [], leftovers
    for raw, expires in store.zrange("rt:pgroups", 0, -1, withscores=True):
        assert store.zcard(f"rt:pc:{{{raw.decode()}}}") == 0
        assert expires < time.time() + 3 * 25 + 1  # 3 heartbeats of presence TTL
