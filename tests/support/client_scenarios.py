"""The client conformance scenarios: one list, run for every client.

``SCENARIOS`` is the only list. tests/e2e/test_client_scenarios.py runs each scenario
against real daphne processes and a real redis-server for every client in
``CLIENTS`` (the Python client, realtime.js under Node, realtime.js in Chromium), so
a scenario cannot exist for one client only; docs/clients.md's conformance checklist
is checked against it (tests/e2e/test_client_scenarios.py::test_checklist_in_docs).

A scenario drives the world (servers, Redis, a slow link, publishing) and one
client through its agent (tests/support/client_agents.py), and asserts what a
conforming client must deliver: every event once, in seq order, or a surfaced
recovery failure. "Lost" means an event missing while no failure was surfaced;
"duplicated" means an event delivered twice.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio

import realtime
from realtime.exceptions import NotifyFailed
from realtime.settings import realtime_settings
from tests.support.processes import free_port
from tests.support.redis_server import RedisServer
from tests.support.servers import DaphneFactory
from tests.support.slow_proxy import SlowProxy

WAIT = 45.0  # s: the longest any expectation waits (a loaded 2-core machine)


class PortTaken(Exception):
    """Another process bound the port chosen for daphne first."""


class World:
    """What a scenario controls: one daphne on a fixed port, its own redis-server,
    publishing like a view (``anotify`` through the same Redis)."""

    def __init__(
        self,
        daphne: DaphneFactory,
        redis: RedisServer,
        users: dict[str, dict[str, Any]],
        publisher: Callable[..., None],
    ) -> None:
        self.daphne, self.redis, self.users = daphne, redis, users
        self.port = 0  # chosen by start_server(); restarts keep it
        # Configures this process's notify() with the servers' REALTIME settings.
        self.publisher = publisher
        self.server: Any = None
        self.settings: dict[str, Any] = {}
        self.proxies: list[SlowProxy] = []

    async def start_server(self, **settings: Any) -> None:
        self.settings = settings
        self.publisher(**settings)
        for _ in range(5):
            # Another process may take a free port before daphne binds it.
            self.port = free_port()
            try:
                self.server = await self._launch()
                return
            except PortTaken:
                continue
        raise RuntimeError("no free port stayed free long enough for daphne")

    async def _launch(self) -> Any:
        server = await asyncio.to_thread(
            self.daphne, redis_url=self.redis.url, port=self.port, **self.settings
        )
        # The port answering is not enough: it may be another process's. Daphne
        # says which it was.
        listening = f"Listening on TCP address 127.0.0.1:{self.port}"
        deadline = time.monotonic() + WAIT
        while listening not in (log := server.log.read_text()):
            if "Listen failure" in log or server.proc.poll() is not None:
                server.stop()
                raise PortTaken(self.port)
            assert time.monotonic() < deadline, f"daphne never listened: {log}"
            await asyncio.sleep(0.05)
        return server

    def url(self, path: str = "/ws/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    @property
    def ticket_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/realtime/ticket/"

    def kill_server(self) -> None:
        """SIGKILL: no close frames, no goodbye."""
        self.server.kill()

    def freeze_server(self) -> None:
        """SIGSTOP: the connection stays up, nothing comes through (a half-open link)."""
        self.server.proc.send_signal(signal.SIGSTOP)

    def thaw_server(self) -> None:
        self.server.proc.send_signal(signal.SIGCONT)

    async def restart_server(self) -> None:
        """On the same port (clients reconnect to the same address)."""
        self.server = await self._launch()

    async def restart_redis(self) -> None:
        """The same port, empty (no persistence): histories and epochs are gone."""
        await asyncio.to_thread(self.redis.stop)
        await asyncio.to_thread(self.redis.start)

    async def history_expired(self, group: str) -> None:
        """Wait (bounded) until Redis dropped ``group``'s event log on its TTL."""
        client = redis.asyncio.Redis.from_url(self.redis.url)
        key = f"{realtime_settings.KEY_PREFIX}:log:{{{group}}}"
        try:
            deadline = time.monotonic() + WAIT
            while await client.exists(key):
                assert time.monotonic() < deadline, f"{key} never expired"
                await asyncio.sleep(0.1)
        finally:
            await client.aclose()

    async def slow_link(self, **options: Any) -> SlowProxy:
        proxy = await SlowProxy(self.port, **options).start()
        self.proxies.append(proxy)
        return proxy

    async def publish(self, group: str, ns: range | list[int], *, pad: int = 0) -> None:
        for n in ns:
            text = f"e{n}".ljust(pad, ".")
            await realtime.anotify(group, "test.note", {"text": text, "n": n})

    async def publish_when_redis_is_back(self, group: str, n: int) -> None:
        """Publish one event, retrying while this process's connections to a
        restarted Redis come back (a failed notify raised: nothing was stored)."""
        deadline = time.monotonic() + WAIT
        while True:
            try:
                await realtime.anotify(group, "test.note", {"text": "new", "n": n})
                return
            except (NotifyFailed, OSError):
                assert time.monotonic() < deadline, "notify never recovered"
                await asyncio.sleep(0.2)

    def logs(self, tail: int = 4000) -> str:
        """The end of every server log of this world (for a failure's report)."""
        return "".join(
            f"--- {server.log.name} ---\n{server.log.read_text()[-tail:]}\n"
            for server in self.daphne.started
            if server.log.exists()
        )

    async def stop(self) -> None:
        for proxy in self.proxies:
            await proxy.stop()


Agent = Any  # tests/support/client_agents.py: PythonAgent, NodeAgent, ChromiumAgent


async def until(
    agent: Agent, check: Callable[[dict], bool], what: str, timeout: float = WAIT
) -> dict:
    """Poll the agent's snapshot until ``check`` holds; fail with it after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        snap = await agent.call("snapshot")
        if check(snap):
            return snap
        if time.monotonic() > deadline:
            brief = {
                **snap,
                "events": {g: (len(e), e[-5:]) for g, e in snap["events"].items()},
            }
            raise AssertionError(f"{agent.name}: timed out waiting for {what}: {brief}")
        await asyncio.sleep(0.05)


async def expect_events(
    agent: Agent, group: str, expected: list[tuple[int, int]], timeout: float = WAIT
) -> dict:
    """Wait for as many events as expected, then compare: [seq, n] pairs, in order.
    A duplicate makes the count arrive early and the comparison fail."""
    snap = await until(
        agent,
        lambda s: len(s["events"].get(group, [])) >= len(expected),
        f"{len(expected)} events of {group}",
        timeout,
    )
    got = [tuple(pair) for pair in snap["events"][group]]
    assert got == expected, diff(got, expected)
    return snap


def diff(got: list, expected: list) -> str:
    seen = [pair[0] for pair in got]
    dups = sorted({s for s in seen if seen.count(s) > 1})
    lost = sorted({pair[0] for pair in expected} - set(seen))
    return (
        f"{len(got)} events, expected {len(expected)}; duplicated {dups}; lost {lost}"
    )


def pairs(seqs: range, ns: range) -> list[tuple[int, int]]:
    return list(zip(seqs, ns, strict=True))


# -- the scenarios -----------------------------------------------------------------


async def connect(world: World, agent: Agent) -> None:
    await world.start_server()
    assert await agent.call("connect", url=world.url()) == {"user": None}
    answer = await agent.call("request", type="test.echo", data={"text": "hi"})
    assert answer == {"ok": {"text": "hi", "user": ""}}
    answer = await agent.call("request", type="test.echo", data={"text": ""})
    assert answer == {"error": "invalid"}
    answer = await agent.call("request", type="test.nope", data={})
    assert answer == {"error": "unknown_type"}


async def auth_by_ticket(world: World, agent: Agent) -> None:
    await world.start_server()
    alice = world.users["alice"]["token"]
    auth = {"kind": "ticket", "ticketUrl": world.ticket_url, "token": alice}
    assert await agent.call("connect", url=world.url("/ws/auth/"), auth=auth) == {
        "user": "alice"
    }
    # Tickets are single-use: the reconnect after a restart needs a fresh one.
    world.kill_server()
    await world.restart_server()
    snap = await until(agent, lambda s: s["connections"] >= 2, "the reconnect")
    assert snap["user"] == "alice"
    answer = await agent.call("request", type="test.echo", data={"text": "me"})
    assert answer == {"ok": {"text": "me", "user": "alice"}}


async def auth_by_first_message(world: World, agent: Agent) -> None:
    await world.start_server()
    bob = world.users["bob"]["token"]
    auth = {"kind": "token", "token": bob}
    assert await agent.call("connect", url=world.url("/ws/auth/"), auth=auth) == {
        "user": "bob"
    }
    answer = await agent.call("request", type="test.echo", data={"text": "me"})
    assert answer == {"ok": {"text": "me", "user": "bob"}}
    await agent.call("close")
    # Bad credentials end the client (4401): no retry loop against a refusal.
    wrong = {"kind": "token", "token": "not-a-token"}
    answer = await agent.call("connect", url=world.url("/ws/auth/"), auth=wrong)
    assert answer == {"error": "not_authenticated", "closeCode": 4401}


async def subscribe(world: World, agent: Agent) -> None:
    await world.start_server()
    await agent.call("connect", url=world.url())
    answer = await agent.call("subscribe", group="public.sub")
    assert answer["ack"]["group"] == "public.sub"
    assert answer["ack"]["seq"] == 0 and answer["ack"]["recovered"] is True
    await world.publish("public.sub", range(5))
    await expect_events(agent, "public.sub", pairs(range(1, 6), range(5)))
    # A permanent refusal is reported, not retried for ever.
    assert await agent.call("subscribe", group="room.secret") == {"error": "forbidden"}


async def subscribe_retried(world: World, agent: Agent) -> None:
    await world.start_server()
    await agent.call("connect", url=world.url())
    # flaky.* groups fail their first subscribe with server_error (tests/testapp).
    answer = await agent.call("subscribe", group="flaky.scenario")
    assert answer["ack"]["group"] == "flaky.scenario", answer
    await world.publish("flaky.scenario", range(3))
    snap = await expect_events(agent, "flaky.scenario", pairs(range(1, 4), range(3)))
    assert snap["connections"] == 1  # retried on the same connection


async def burst_of_1000(world: World, agent: Agent) -> None:
    # A small MAX_PENDING_BYTES: the server pings every 16 KB and closes (4507) a
    # connection whose pongs have not echoed the pings' nonces 64 KB later.
    await world.start_server(MAX_PENDING_BYTES=65536)
    await agent.call("connect", url=world.url())
    await agent.call("subscribe", group="public.burst")
    # All at once: a reader that falls behind may be closed and must then recover.
    await world.publish("public.burst", range(1000))
    snap = await expect_events(
        agent, "public.burst", pairs(range(1, 1001), range(1000))
    )
    assert snap["failures"] == []
    # 500 more, 280 KB, in steps a reader keeps up with however loaded the machine:
    # the connection survives only if every pong echoed its ping's nonce.
    connections = snap["connections"]
    for step in range(5):
        ns = range(1000 + 100 * step, 1100 + 100 * step)
        await world.publish("public.burst", ns, pad=250)
        snap = await expect_events(
            agent, "public.burst", pairs(range(1, ns.stop + 1), range(ns.stop))
        )
    assert snap["connections"] == connections and snap["failures"] == []


async def server_killed_and_restarted(world: World, agent: Agent) -> None:
    await world.start_server()
    await agent.call("connect", url=world.url())
    await agent.call("subscribe", group="public.kill")
    await world.publish("public.kill", range(10))
    await expect_events(agent, "public.kill", pairs(range(1, 11), range(10)))
    world.kill_server()
    await until(agent, lambda s: s["state"] != "open", "the client to notice")
    await world.publish("public.kill", range(10, 30))  # missed while down
    await world.restart_server()
    await until(agent, lambda s: s["connections"] >= 2, "the reconnect")
    await world.publish("public.kill", range(30, 40))
    snap = await expect_events(agent, "public.kill", pairs(range(1, 41), range(40)))
    assert snap["failures"] == []


async def silent_server(world: World, agent: Agent) -> None:
    await world.start_server(HEARTBEAT_INTERVAL=1, HEARTBEAT_TIMEOUT=3)
    await agent.call("connect", url=world.url())
    await agent.call("subscribe", group="public.frozen")
    await world.publish("public.frozen", range(3))
    await expect_events(agent, "public.frozen", pairs(range(1, 4), range(3)))
    world.freeze_server()
    try:
        # heartbeat (1 s) + the client's grace (5 s by default), with slack.
        await until(agent, lambda s: s["state"] != "open", "the silence noticed", 20)
        await world.publish("public.frozen", range(3, 6))
    finally:
        world.thaw_server()
    await until(agent, lambda s: s["connections"] >= 2, "the reconnect")
    await world.publish("public.frozen", range(6, 8))
    snap = await expect_events(agent, "public.frozen", pairs(range(1, 9), range(8)))
    assert snap["failures"] == []


async def redis_restarted(world: World, agent: Agent) -> None:
    await world.start_server()
    await agent.call("connect", url=world.url())
    await agent.call("subscribe", group="public.redis")
    await world.publish("public.redis", range(5))
    await expect_events(agent, "public.redis", pairs(range(1, 6), range(5)))
    old = (await agent.call("snapshot"))["events"]
    await world.restart_redis()
    await world.publish_when_redis_is_back("public.redis", 100)
    snap = await until(agent, lambda s: s["failures"], "the surfaced reset")
    failure = snap["failures"][0]
    assert failure["group"] == "public.redis" and failure["since"] == 5
    assert failure["reason"] in ("epoch_changed", None), failure
    await world.publish("public.redis", range(101, 104))
    # The new epoch from its seq 1: each event once, in order, after the old ones.
    expected = [*map(tuple, old["public.redis"]), *pairs(range(1, 5), range(100, 104))]
    snap = await expect_events(agent, "public.redis", expected)
    # A reset may be followed by a second notice of the same incident (a resubscribe
    # acked recovered: false): both name this group and the new epoch.
    assert {(f["group"], f["epoch"]) for f in snap["failures"]} == {
        ("public.redis", failure["epoch"])
    }


async def history_expired(world: World, agent: Agent) -> None:
    await world.start_server(HISTORY_SIZE=5)
    await agent.call("connect", url=world.url())
    await agent.call("subscribe", group="public.expiry")
    await world.publish("public.expiry", range(3))
    await expect_events(agent, "public.expiry", pairs(range(1, 4), range(3)))
    world.kill_server()
    await until(agent, lambda s: s["state"] != "open", "the client to notice")
    await world.publish("public.expiry", range(3, 23))  # 4..23: only 19..23 kept
    await world.restart_server()
    snap = await until(agent, lambda s: s["failures"], "recovered: false surfaced")
    (failure,) = snap["failures"]
    assert (failure["group"], failure["since"], failure["seq"]) == (
        "public.expiry",
        3,
        23,
    )
    await world.publish("public.expiry", range(23, 25))
    expected = [*pairs(range(1, 4), range(3)), *pairs(range(24, 26), range(23, 25))]
    snap = await expect_events(agent, "public.expiry", expected)
    assert len(snap["failures"]) == 1


async def history_aged_out(world: World, agent: Agent) -> None:
    await world.start_server(HISTORY_TTL=2)
    await agent.call("connect", url=world.url())
    await agent.call("subscribe", group="public.aged")
    await world.publish("public.aged", range(3))
    await expect_events(agent, "public.aged", pairs(range(1, 4), range(3)))
    world.kill_server()
    await until(agent, lambda s: s["state"] != "open", "the client to notice")
    await world.publish("public.aged", range(3, 6))
    # Offline past HISTORY_TTL: the group's log expires in Redis (its seq and epoch
    # live on, so the group keeps counting in the same epoch).
    await world.history_expired("public.aged")
    await world.restart_server()
    snap = await until(agent, lambda s: s["failures"], "recovered: false surfaced")
    (failure,) = snap["failures"]
    assert (failure["group"], failure["since"], failure["seq"]) == ("public.aged", 3, 6)
    await world.publish("public.aged", range(6, 8))
    expected = [*pairs(range(1, 4), range(3)), *pairs(range(7, 9), range(6, 8))]
    snap = await expect_events(agent, "public.aged", expected)
    assert len(snap["failures"]) == 1


async def recovery_failed(world: World, agent: Agent) -> None:
    await world.start_server()
    await world.publish("public.lost", range(5))
    await agent.call("connect", url=world.url())
    # A position from an epoch the server does not have (another Redis, long ago).
    answer = await agent.call(
        "subscribe", group="public.lost", since=3, epoch="not-the-epoch"
    )
    assert answer["ack"]["recovered"] is False and answer["ack"]["seq"] == 5
    snap = await until(agent, lambda s: s["failures"], "recovered: false surfaced")
    assert snap["failures"] == [
        {
            "group": "public.lost",
            "since": 3,
            "seq": 5,
            "epoch": answer["ack"]["epoch"],
            "reason": None,
        }
    ]
    await world.publish("public.lost", range(5, 7))
    await expect_events(agent, "public.lost", pairs(range(6, 8), range(5, 7)))


async def slow_network(world: World, agent: Agent) -> None:
    await world.start_server()
    link = await world.slow_link(latency=0.05, rate=32_000, chunk=2048)
    await agent.call("connect", url=f"{link.url}/ws/")
    await agent.call("subscribe", group="public.slow")
    # ~60 KB through a 32 KB/s link: the reader lags the server by seconds.
    await world.publish("public.slow", range(200), pad=200)
    await until(
        agent, lambda s: len(s["events"]["public.slow"]) >= 50, "the first events"
    )
    link.cut()  # the link drops mid-stream, without a close frame
    await world.publish("public.slow", range(200, 300), pad=200)
    snap = await expect_events(
        agent, "public.slow", pairs(range(1, 301), range(300)), timeout=90
    )
    assert snap["failures"] == [] and snap["connections"] >= 2


@dataclass(frozen=True)
class Scenario:
    name: str
    #: The conformance checklist's line for it (docs/clients.md).
    requirement: str
    run: Callable[[World, Agent], Awaitable[None]]


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "connect",
        "Connect anonymously, wait for `rt.welcome`; a request is answered by its "
        "`rt.ack` data, or fails with the `rt.error` code (`invalid`, `unknown_type`).",
        connect,
    ),
    Scenario(
        "auth_by_ticket",
        "Fetch a ticket before every connect (tickets are single-use) and connect "
        "with `?ticket=`; after a server restart the reconnect is authenticated again.",
        auth_by_ticket,
    ),
    Scenario(
        "auth_by_first_message",
        "Send the token as `rt.auth`, the first message after the welcome; wait for "
        "its ack. Bad credentials close with 4401: report it, do not reconnect.",
        auth_by_first_message,
    ),
    Scenario(
        "subscribe",
        "`rt.subscribe` is acked with `{group, seq, epoch, recovered}`; the group's "
        "events follow in seq order; a permanent refusal (`forbidden`) is reported "
        "and not retried.",
        subscribe,
    ),
    Scenario(
        "subscribe_retried",
        "A transient subscribe error (`server_error`) is retried from the same "
        "position with backoff, on the same connection, until acked.",
        subscribe_retried,
    ),
    Scenario(
        "burst_of_1000",
        "A burst of 1,000 events arrives complete, each once, in seq order (a "
        "reader closed as a slow consumer recovers); under byte pressure every "
        "`rt.ping` is answered with its `data` echoed, so the connection stays up.",
        burst_of_1000,
    ),
    Scenario(
        "server_killed_and_restarted",
        "The server is SIGKILLed and restarted on the same port: reconnect with "
        "backoff, resubscribe with the last `seq` and `epoch`, get what was published "
        "while down, each once, in order, then live events.",
        server_killed_and_restarted,
    ),
    Scenario(
        "silent_server",
        "A frozen server (SIGSTOP: a half-open link): nothing arrives for the "
        "heartbeat plus a grace, so drop the socket without a close handshake, "
        "reconnect once it answers, and recover what was published meanwhile.",
        silent_server,
    ),
    Scenario(
        "redis_restarted",
        "Redis restarts empty: the group's epoch changes; surface the recovery "
        "failure (`rt.reset`, or `recovered: false`), move to the new epoch, and "
        "deliver its events from seq 1.",
        redis_restarted,
    ),
    Scenario(
        "history_expired",
        "History no longer holds what the client missed while offline (more "
        "events than `HISTORY_SIZE`): the "
        "resubscribe is acked `recovered: false`; surface it with the positions, "
        "then continue after the ack's `seq`.",
        history_expired,
    ),
    Scenario(
        "history_aged_out",
        "Offline longer than the history's lifetime (`HISTORY_TTL`), in the same "
        "epoch: the resubscribe is acked `recovered: false`; surface it, then "
        "continue after the ack's `seq`.",
        history_aged_out,
    ),
    Scenario(
        "recovery_failed",
        "A resume position from an unknown epoch: the ack says `recovered: false`; "
        "surface it (never swallow it) and continue with the ack's position.",
        recovery_failed,
    ),
    Scenario(
        "slow_network",
        "Over a slow link (latency, 32 KB/s) that drops mid-stream without a close "
        "frame, every event still arrives once, in order.",
        slow_network,
    ),
)
