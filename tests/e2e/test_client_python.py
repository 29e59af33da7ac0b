"""The Python client (realtime.client) against real daphne processes and redis-server.

The test process publishes with the real ``anotify()`` through the same Redis as the
servers (like a view or a task), and reads with ``RealtimeClient`` as a script would.
Each scenario of the client conformance checklist (docs/clients.md) that the Python
client covers is named in its test's docstring.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

import realtime
from realtime.client import (
    ClientClosed,
    ClientError,
    Event,
    RealtimeClient,
    RecoveryFailed,
    Subscription,
)
from realtime.exceptions import NotifyFailed
from tests.e2e.test_no_silent_loss import CORE, publish_through
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.e2e]

FAST = {"reconnect_delay": 0.1, "max_reconnect_delay": 1.0, "connect_timeout": 5}


@pytest.fixture(scope="module")
def server(daphne_module, module_redis):
    # A small MAX_PENDING_BYTES makes a burst depend on the client's pongs: a pong
    # that does not echo the nonce ends the connection (4507) within the burst.
    return daphne_module(redis_url=module_redis, MAX_PENDING_BYTES=65536)


@pytest.fixture
def publish(settings, module_redis):
    publish_through(settings, CORE, module_redis)

    async def send(group: str, count: int, *, start: int = 0, pad: int = 0) -> None:
        for n in range(start, start + count):
            text = f"e{n}".ljust(pad, ".")
            await realtime.anotify(group, "test.note", {"text": text, "n": n})

    return send


async def take(sub: Subscription, count: int, timeout: float = 20) -> list[Event]:
    """``count`` events from ``sub`` within ``timeout`` seconds."""
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    while len(events) < count:
        events.append(await sub.get(timeout=max(0.01, deadline - time.monotonic())))
    return events


async def nothing_more(sub: Subscription, wait: float = 0.5) -> None:
    with pytest.raises(TimeoutError):
        await sub.get(timeout=wait)


async def test_burst_of_1000_events_by_token(server, publish, e2e_users):
    """Scenarios: auth by first message (token), subscribe, burst of 1,000 events
    (0 lost, 0 duplicated, in order), heartbeat (nonce pongs under byte pressure)."""
    token = e2e_users["bob"]["token"]
    async with RealtimeClient(f"{server.url}/ws/auth/", token=token, **FAST) as client:
        assert client.user is not None and client.user["username"] == "bob"
        sub = await client.subscribe("public.burst")
        assert sub.ack is not None and sub.ack["epoch"] and sub.ack["recovered"]
        # 4x MAX_PENDING_BYTES in all, in steps the reader keeps up with however
        # loaded the machine: only pongs that echo their ping's nonce acknowledge
        # those bytes, so the connection survives only if every pong did.
        events = []
        for step in range(10):
            await publish("public.burst", 100, start=100 * step, pad=200)
            events += await take(sub, 100, timeout=30)
        assert [e.data["n"] for e in events] == list(range(1000))
        assert [e.seq for e in events] == list(range(1, 1001))
        assert {e.group for e in events} == {"public.burst"}
        assert {e.epoch for e in events} == {sub.ack["epoch"]}
        await nothing_more(sub)
        # The pongs echoed every nonce: the server never closed a slow consumer.
        assert client.connections == 1 and client.state == "open"


async def test_requests_ack_and_errors(server, e2e_users):
    """Scenarios: request answered by rt.ack; rt.error codes raised."""
    async with RealtimeClient(f"{server.url}/ws/", **FAST) as client:
        assert client.user is None
        ack = await client.request("test.echo", {"text": "hi"})
        assert ack == {"text": "hi", "user": ""}
        with pytest.raises(ClientError) as invalid:
            await client.request("test.echo", {"text": ""})
        assert invalid.value.code == "invalid" and "text" in invalid.value.errors
        with pytest.raises(ClientError) as boom:
            await client.request("test.boom", {})
        assert boom.value.code == "server_error"
        with pytest.raises(ClientError) as unknown:
            await client.request("test.nope", {})
        assert unknown.value.code == "unknown_type"
        assert await client.send("test.echo", {"text": "fire and forget"}) is True
        assert await client.ping() < 5


async def test_auth_by_ticket_and_by_header(server, e2e_users):
    """Scenarios: auth by ticket (fetched before every connect) and by header."""
    alice = e2e_users["alice"]["token"]
    ticket_url = f"http://127.0.0.1:{server.port}/realtime/ticket/"
    async with RealtimeClient(
        f"{server.url}/ws/auth/",
        ticket_url=ticket_url,
        ticket_headers={"Authorization": f"Token {alice}"},
        **FAST,
    ) as client:
        assert client.welcome is not None
        assert client.welcome["user"]["username"] == "alice"
    bob = e2e_users["bob"]["token"]
    async with RealtimeClient(
        f"{server.url}/ws/auth/", headers={"Authorization": f"Token {bob}"}, **FAST
    ) as client:
        assert client.user is not None and client.user["username"] == "bob"


async def test_final_close_codes_are_raised_not_retried(server, e2e_users):
    """Scenarios: bad credentials (4401) and forbidden at connect (4403) end the
    client at once; a ticket endpoint refusing the caller ends it too."""
    started = time.monotonic()
    with pytest.raises(ClientClosed) as bad:
        async with RealtimeClient(f"{server.url}/ws/auth/", token="wrong", **FAST):
            pass
    assert bad.value.close_code == 4401 and bad.value.code == "not_authenticated"
    bob = e2e_users["bob"]["token"]
    with pytest.raises(ClientClosed) as forbidden:
        async with RealtimeClient(f"{server.url}/ws/staff/", token=bob, **FAST):
            pass
    assert forbidden.value.close_code == 4403
    with pytest.raises(ClientClosed) as refused:
        async with RealtimeClient(
            f"{server.url}/ws/auth/",
            ticket_url=f"http://127.0.0.1:{server.port}/realtime/ticket/",
            **FAST,
        ):
            pass
    assert refused.value.code == "not_authenticated"
    assert time.monotonic() - started < 10


async def test_subscribe_errors_permanent_raised_transient_retried(server, e2e_users):
    """Scenarios: a permanent subscribe error is raised; a transient one
    (server_error) is retried with backoff until acked."""
    bob = e2e_users["bob"]["token"]
    async with RealtimeClient(f"{server.url}/ws/auth/", token=bob, **FAST) as client:
        with pytest.raises(ClientError) as refused:
            await client.subscribe("room.secret")
        assert refused.value.code == "forbidden"
        with pytest.raises(ClientError) as bad_name:
            await client.subscribe("room.bad name")
        assert bad_name.value.code == "bad_envelope"  # a space: no group name
        flaky = f"flaky.py{time.monotonic_ns()}"
        sub = await asyncio.wait_for(client.subscribe(flaky), 10)
        assert sub.ack is not None and sub.ack["group"] == flaky
        room = await client.subscribe("room.1")  # the connection still serves
        assert room.ack is not None and room.ack["group"] == "room.1"
        assert client.connections == 1


async def test_resume_from_a_stored_position_and_failed_recovery(server, publish):
    """Scenarios: resume with since/epoch from another client (a process restart);
    recovery failed (an epoch the server does not have) surfaces RecoveryFailed."""
    group = f"public.resume{time.monotonic_ns()}"
    async with RealtimeClient(f"{server.url}/ws/", **FAST) as client:
        sub = await client.subscribe(group)
        await publish(group, 5)
        events = await take(sub, 5)
    last = events[2]
    await publish(group, 3, start=5)
    async with RealtimeClient(f"{server.url}/ws/", **FAST) as client:
        sub = await client.subscribe(group, since=last.seq, epoch=last.epoch)
        assert sub.ack is not None and sub.ack["recovered"] is True
        replayed = await take(sub, 5)
        assert [e.data["n"] for e in replayed] == [3, 4, 5, 6, 7]
        await nothing_more(sub)
    async with RealtimeClient(f"{server.url}/ws/", **FAST) as client:
        sub = await client.subscribe(group, since=3, epoch="not-the-epoch")
        with pytest.raises(RecoveryFailed) as failed:
            await sub.get(timeout=5)
        assert failed.value.group == group and failed.value.since == 3
        assert failed.value.seq == 8 and failed.value.reason is None
        assert sub.seq == 8  # the position moved to the ack's
        await publish(group, 1, start=8)
        (live,) = await take(sub, 1)
        assert (live.seq, live.data["n"]) == (9, 8)


def test_sync_client_for_scripts(server):
    """The blocking wrapper: subscribe, request, read events, close."""
    with RealtimeClient.sync(f"{server.url}/ws/", **FAST) as client:
        sub = client.subscribe("public.sync")
        ack = client.request("test.say", {"group": "public.sync", "text": "hi"})
        event = sub.get(timeout=10)
        assert event is not None and event.data["text"] == "hi"
        assert event.seq == ack["seq"]
        with pytest.raises(ClientError) as refused:
            client.subscribe("room.1")  # anonymous: forbidden
        assert refused.value.code == "forbidden"
        sub.unsubscribe()
        assert list(sub) == []
    assert not client._thread.is_alive()


async def test_unsubscribe_ends_the_iterator_and_close_ends_all(server):
    async with RealtimeClient(f"{server.url}/ws/", **FAST) as client:
        one = await client.subscribe("public.one")
        two = await client.subscribe("public.two")
        await one.unsubscribe()
        assert [e async for e in one] == []
        assert "public.one" not in client.positions()
    assert [e async for e in two] == []
    with pytest.raises(ClientClosed):
        await client.request("test.echo", {"text": "after close"})


async def test_sigkill_and_restart_recovers_every_event(daphne, redis_url, settings):
    """Scenario: server SIGKILL and restart on the same port: the client reconnects,
    resubscribes with since/epoch and gets what was published meanwhile, once, in
    order; a request made while offline is queued and answered after."""
    publish_through(settings, CORE, redis_url)
    first = daphne(redis_url=redis_url)
    group = "public.kill"
    async with RealtimeClient(f"{first.url}/ws/", **FAST) as client:
        sub = await client.subscribe(group)
        for n in range(10):
            await realtime.anotify(group, "test.note", {"text": "before", "n": n})
        assert [e.seq for e in await take(sub, 10)] == list(range(1, 11))
        first.kill()
        deadline = time.monotonic() + 10
        while client.state == "open" and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert client.state != "open"
        for n in range(10, 30):
            await realtime.anotify(group, "test.note", {"text": "down", "n": n})
        queued = asyncio.create_task(client.request("test.echo", {"text": "queued"}))
        await asyncio.sleep(0.1)
        assert client.queued == 1
        daphne(redis_url=redis_url, port=first.port)
        assert (await asyncio.wait_for(queued, 20))["text"] == "queued"
        for n in range(30, 40):
            await realtime.anotify(group, "test.note", {"text": "after", "n": n})
        events = await take(sub, 30)
        assert [e.data["n"] for e in events] == list(range(10, 40))
        assert [e.seq for e in events] == list(range(11, 41))
        await nothing_more(sub)
        assert client.connections == 2


async def test_silent_server_is_detected_by_heartbeat(daphne):
    """Scenario: a frozen server (a half-open link): nothing arrives for heartbeat +
    grace, the client drops the socket without a close handshake and reconnects;
    meanwhile its pongs keep a live server from closing it (4408)."""
    server = daphne(HEARTBEAT_INTERVAL=1, HEARTBEAT_TIMEOUT=3)
    async with RealtimeClient(f"{server.url}/ws/", heartbeat_grace=1, **FAST) as client:
        await asyncio.sleep(4)  # past HEARTBEAT_TIMEOUT: the pongs count as frames
        assert client.state == "open" and client.connections == 1
        server.proc.send_signal(signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 6
            while client.state == "open" and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert client.state != "open", "a silent server went unnoticed"
        finally:
            server.proc.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 15
        while client.connections < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert client.connections == 2 and client.state == "open"
        assert (await client.request("test.echo", {"text": "back"}))["text"] == "back"


async def test_redis_restarted_empty_surfaces_a_reset(daphne, settings):
    """Scenario: Redis restarted empty: the group's history starts over, the client
    raises RecoveryFailed (an rt.reset, or a resubscribe acked recovered: false),
    moves to the new epoch and keeps delivering its events."""
    own = RedisServer()
    own.start()
    try:
        server = daphne(redis_url=own.url)
        publish_through(settings, CORE, own.url)
        group = "public.redis"
        async with RealtimeClient(f"{server.url}/ws/", **FAST) as client:
            sub = await client.subscribe(group)
            for n in range(5):
                await realtime.anotify(group, "test.note", {"text": "old", "n": n})
            await take(sub, 5)
            old_epoch = sub.epoch
            own.stop()
            own.start()
            deadline = time.monotonic() + 20
            while True:  # the layer reconnects on its own schedule
                try:
                    await realtime.anotify(group, "test.note", {"text": "new", "n": 0})
                    break
                except (NotifyFailed, OSError):
                    assert time.monotonic() < deadline, "notify never recovered"
                    await asyncio.sleep(0.2)
            with pytest.raises(RecoveryFailed) as reset:
                await sub.get(timeout=20)
            assert reset.value.group == group
            assert reset.value.epoch != old_epoch
            assert reset.value.reason == "epoch_changed" and reset.value.since == 5
            for n in range(1, 4):
                await realtime.anotify(group, "test.note", {"text": "new", "n": n})
            # The new epoch's events from seq 1, each once, in order.
            got = await take(sub, 4)
            assert [(e.seq, e.data["n"]) for e in got] == [
                (1, 0),
                (2, 1),
                (3, 2),
                (4, 3),
            ]
            assert {e.epoch for e in got} == {reset.value.epoch} == {sub.epoch}
            await nothing_more(sub)
    finally:
        own.stop()
