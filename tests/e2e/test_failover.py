"""Sentinel failovers while clients are connected and notify() runs in a loop: no
(epoch, seq) ever names two different events, and every acknowledged event a client
did not get is announced (rt.reset or recovered: false)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
from dataclasses import dataclass, field

import pytest
import redis
from channels.layers import channel_layers

import realtime
from realtime import backends
from realtime.exceptions import NotifyFailed
from tests.support.sentinel import SentinelGroup
from tests.support.wsclient import Client

pytestmark = [pytest.mark.e2e, pytest.mark.django_db, pytest.mark.timeout(180)]

GROUP = "public.failover"


@pytest.fixture
def sentinel_group():
    group = SentinelGroup()
    yield group
    group.stop()


@dataclass
class Follower:
    """One socket's view: which text it got under each (epoch, seq)."""

    client: Client
    epoch: str | None = None
    last: int = 0
    seen: dict[tuple[str | None, int], str] = field(default_factory=dict)
    arrivals: list[float] = field(default_factory=list)
    told: int = 0  # rt.reset frames and recovered: false acks

    def take(self, frame: dict) -> None:
        if frame["type"] == "rt.reset" and frame.get("group") == GROUP:
            self.told += 1
            self.epoch, self.last = frame["data"]["epoch"], frame["data"]["seq"] or 0
        elif frame["type"] == "test.note":
            seq = frame["seq"]
            key = (self.epoch, seq)
            assert self.seen.get(key, frame["data"]["text"]) == frame["data"]["text"]
            self.seen[key] = frame["data"]["text"]
            self.last = seq
            self.arrivals.append(time.monotonic())

    async def follow(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                self.take(await self.client.recv(timeout=0.3))
            except TimeoutError:
                continue

    async def resync(self) -> None:
        """Resubscribe from the last position, as a reconnecting client does."""
        await self.client.request("rt.unsubscribe", {"group": GROUP})
        ack = await self.client.request(
            "rt.subscribe",
            {"group": GROUP, "since": self.last, "epoch": self.epoch},
            timeout=10,
        )
        assert ack["type"] == "rt.ack", ack
        if not ack["data"]["recovered"]:
            self.told += 1
        self.epoch = ack["data"]["epoch"]
        pending, self.client.pending = self.client.pending, []
        for frame in pending:
            self.take(frame)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                self.take(await self.client.recv(timeout=0.5))
            except TimeoutError:
                break


async def run_failover(sentinel_group, daphne, settings, fail) -> dict:
    env = {"RT_SENTINEL": f"127.0.0.1:{sentinel_group.port}:mymaster"}
    servers = [daphne(env=env), daphne(env=env)]
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [sentinel_group.host]},
        }
    }
    settings.REALTIME = {**settings.REALTIME, "NOTIFY_TIMEOUT": 1.0}
    channel_layers.backends = {}
    backends.reset()
    followers = []
    for server in servers:
        client = await Client.open(f"{server.url}/ws/")
        ack = await client.request("rt.subscribe", {"group": GROUP})
        followers.append(Follower(client, epoch=ack["data"]["epoch"]))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(f.follow(stop)) for f in followers]
    accepted: dict[str, float] = {}
    failed = 0

    async def publish() -> None:
        nonlocal failed
        n = 0
        while not stop.is_set():
            text = f"n{n}"
            n += 1
            try:
                if await realtime.anotify(GROUP, "test.note", {"text": text}):
                    accepted[text] = time.monotonic()
            except NotifyFailed:
                failed += 1
            await asyncio.sleep(0.01)

    publisher = asyncio.create_task(publish())
    await asyncio.sleep(1.5)
    old = sentinel_group.master_port()
    failed_at = time.monotonic()
    await asyncio.to_thread(fail, sentinel_group)
    switch = await asyncio.to_thread(sentinel_group.wait_for_new_master, old)
    # A graceful failover leaves the old master writable until Sentinel turns it
    # into a replica: its writes meanwhile are lost then.
    old_master = sentinel_group.master
    demoted = switch + await asyncio.to_thread(
        sentinel_group.wait_until_replica, old_master
    )
    # Until every socket has events of the new master again, then a little more.
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and not all(
        f.arrivals and f.arrivals[-1] > failed_at + demoted + 0.5 for f in followers
    ):
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    stop.set()
    await publisher
    await asyncio.gather(*tasks)
    for follower in followers:
        await follower.resync()

    # No (epoch, seq) names two different events, across every socket's view.
    names: dict[tuple[str | None, int], str] = {}
    for follower in followers:
        for key, text in follower.seen.items():
            assert names.setdefault(key, text) == text, (key, names[key], text)
    # Accepted while Sentinel had promoted the replica but the old master still
    # took writes: delivered live, absent from the new master's history.
    window = (failed_at + switch, failed_at + demoted)
    report = {
        "switch_s": round(switch, 2),
        "demoted_s": round(demoted, 2),
        "notify_failed": failed,
        "accepted_in_window": sum(
            window[0] <= t <= window[1] for t in accepted.values()
        ),
    }
    for index, follower in enumerate(followers):
        got = set(follower.seen.values())
        missed = [text for text in accepted if text not in got]
        # Whatever a socket did not get, it was told about.
        assert not missed or follower.told, missed[:5]
        during = [t for t in follower.arrivals if t >= failed_at]
        gaps = [b - a for a, b in itertools.pairwise(during)]
        report[f"socket{index}"] = {
            "accepted": len(accepted),
            "received": len(got),
            "missed": len(missed),
            "told": follower.told,
            "silent_s": round(max([during[0] - failed_at, *gaps]), 2),
        }
        await follower.client.close()
    print("FAILOVER", fail.__name__, json.dumps(report))
    return report


def graceful(group: SentinelGroup) -> None:
    group.client.execute_command("SENTINEL", "FAILOVER", "mymaster")


def sigkill(group: SentinelGroup) -> None:
    os.kill(group.master.proc.pid, signal.SIGKILL)


def lagging(group: SentinelGroup) -> None:
    """The replica misses half a second of writes, then the master dies: Sentinel
    promotes a replica that lacks acknowledged events."""
    os.kill(group.replica.proc.pid, signal.SIGSTOP)
    # Cut the link too: bytes already in the replica's socket would reach it.
    with redis.Redis(port=group.master.port) as master:
        master.client_kill_filter(_type="slave")
    time.sleep(0.5)
    os.kill(group.master.proc.pid, signal.SIGKILL)
    os.kill(group.replica.proc.pid, signal.SIGCONT)


@pytest.mark.parametrize(
    "fail", [graceful, sigkill, lagging], ids=["graceful", "sigkill", "lagging"]
)
async def test_failover_never_reuses_a_seq_for_another_event(
    sentinel_group, daphne, settings, fail
):
    report = await run_failover(sentinel_group, daphne, settings, fail)
    for index in (0, 1):
        assert report[f"socket{index}"]["received"] > 0
