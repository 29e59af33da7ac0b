"""Inspection commands against a real Redis, real daphne processes and real clients.

``realtime_status`` / ``realtime_presence`` / ``realtime_history`` must print the
figures the servers hold; ``realtime_notify`` must validate and deliver.
"""

from __future__ import annotations

import asyncio
import io
import json
import time

import pytest
from django.core.management import CommandError, call_command

from realtime.testing import RealtimeCommunicator
from tests.asgi import application
from tests.support.wsclient import Client

pytestmark = [pytest.mark.django_db(transaction=True)]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


async def arun(*args: str) -> str:
    # The commands run their own event loop (asyncio.run), so not on the test's.
    return await asyncio.to_thread(run, *args)


async def wait_for(predicate, timeout: float = 15):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.2)


@pytest.mark.e2e
async def test_commands_report_what_two_daphne_processes_hold(
    daphne, redis_layer, e2e_users
):
    one = daphne(redis_url=redis_layer, PROCESS_HEARTBEAT=1)
    two = daphne(redis_url=redis_layer, PROCESS_HEARTBEAT=1)
    alice = await Client.open(
        f"{one.url}/ws/auth/",
        headers={"Authorization": f"Token {e2e_users['alice']['token']}"},
    )
    bob = await Client.open(
        f"{two.url}/ws/auth/",
        headers={"Authorization": f"Token {e2e_users['bob']['token']}"},
    )
    anon = await Client.open(f"{two.url}/ws/")
    for client, group in ((alice, "room.1"), (bob, "room.1"), (anon, "public.x")):
        ack = await client.request("rt.subscribe", {"group": group})
        assert ack["type"] == "rt.ack", ack
    for n in range(3):
        ack = await alice.request("test.say", {"group": "room.1", "text": f"m{n}"})
        assert ack["data"]["seq"] == n + 1
    alice_group = f"user.{e2e_users['alice']['pk']}"
    bob_group = f"user.{e2e_users['bob']['pk']}"

    async def settled():
        report = json.loads(await arun("realtime_status", "--json"))
        by_conns = sorted(p["connections"] for p in report["processes"])
        return report if by_conns == [1, 2] else None

    report = await wait_for(settled)
    assert report["backend"] == "redis"
    assert report["connections"] == 3
    pids = {p["pid"] for p in report["processes"]}
    assert pids == {one.proc.pid, two.proc.pid}
    by_pid = {p["pid"]: p for p in report["processes"]}
    assert by_pid[one.proc.pid]["consumers"] == {"AuthConsumer": 1}
    assert by_pid[two.proc.pid]["consumers"] == {"AuthConsumer": 1, "EchoConsumer": 1}
    assert by_pid[two.proc.pid]["authenticated"] == 1
    assert report["groups"] == {
        "room.1": 2,
        "public.x": 1,
        alice_group: 1,
        bob_group: 1,
    }
    assert report["presence"] == {"room.1": 2, "public.x": 1}
    assert report["history"] == {"room.1": 3}

    text = await arun("realtime_status")
    assert "processes: 2  connections: 3" in text
    assert "  room.1  2\n" in text
    assert "history: 1 groups" in text

    presence = json.loads(await arun("realtime_presence", "room.1", "--json"))
    assert sorted(m["username"] for m in presence["members"]) == ["alice", "bob"]
    assert (presence["anonymous"], presence["connections"]) == (0, 2)
    text = await arun("realtime_presence", "public.x")
    assert text.startswith("public.x: 0 users, 1 anonymous, 1 connections")

    history = json.loads(
        await arun("realtime_history", "room.1", "--since", "1", "--json")
    )
    assert history["seq"] == 3 and history["recovered"] is True
    assert [f["seq"] for f in history["frames"]] == [2, 3]
    assert [f["frame"]["data"]["text"] for f in history["frames"]] == ["m1", "m2"]
    text = await arun("realtime_history", "room.1")
    assert text.splitlines()[0].startswith("room.1: seq=3 ")
    assert len(text.splitlines()) == 4  # the header and three frames

    # An operator's event goes through validation, history and both processes.
    out = await arun("realtime_notify", "room.1", "test.say", '{"text": "from ops"}')
    assert out.strip() == "sent test.say v1 to room.1 seq=4"
    for client in (alice, bob):
        while True:
            frame = await client.next_event()
            if frame.get("seq") == 4:
                break
        assert frame["data"] == {"text": "from ops"}
        assert frame["group"] == "room.1"

    # Leaving shows up in the next heartbeat and in presence at once.
    await bob.close()

    async def bob_gone():
        report = json.loads(await arun("realtime_status", "--json"))
        return report if report["connections"] == 2 else None

    report = await wait_for(bob_gone)
    assert report["groups"]["room.1"] == 1
    presence = json.loads(await arun("realtime_presence", "room.1", "--json"))
    assert [m["username"] for m in presence["members"]] == ["alice"]
    await alice.close()
    await anon.close()


def test_notify_command_validates_against_the_registry(redis_layer):
    with pytest.raises(CommandError, match="text"):
        run("realtime_notify", "room.1", "test.say", "{}")
    with pytest.raises(CommandError, match="not a registered event type"):
        run("realtime_notify", "room.1", "nope.nope", "{}")
    with pytest.raises(CommandError, match="JSON is not valid"):
        run("realtime_notify", "room.1", "test.say", "{text")
    with pytest.raises(CommandError, match="must be an object"):
        run("realtime_notify", "room.1", "test.say", "[1]")
    with pytest.raises(CommandError, match="group must be"):
        run("realtime_notify", "bad group!", "test.say", '{"text": "x"}')
    assert "seq=1" in run("realtime_notify", "room.9", "test.say", '{"text": "x"}')


def test_group_arguments_are_validated(redis_layer):
    with pytest.raises(CommandError, match="group must be"):
        run("realtime_presence", "no spaces")
    with pytest.raises(CommandError, match="group must be"):
        run("realtime_history", "x" * 200)
    with pytest.raises(CommandError, match="--since"):
        run("realtime_history", "room.1", "--since", "-1")


async def test_status_on_the_memory_backend_shows_this_process(settings):
    settings.REALTIME = {**settings.REALTIME, "PROCESS_HEARTBEAT": 0.2}
    comm = RealtimeCommunicator(application, "/ws/")
    assert (await comm.connect())[0]
    assert (await comm.subscribe("public.mem"))["type"] == "rt.ack"
    await comm.request("test.say", {"group": "public.mem", "text": "hi"})

    async def beat():
        report = json.loads(await arun("realtime_status", "--json"))
        mine = [p for p in report["processes"] if p["groups"].get("public.mem")]
        return report if mine and mine[0]["connections"] == 1 else None

    report = await wait_for(beat)
    assert report["backend"] == "memory"
    assert report["history"]["public.mem"] == 1
    assert report["presence"]["public.mem"] == 1
    await comm.disconnect()
