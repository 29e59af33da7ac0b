"""Integrity: does every subscribed socket get every accepted event, or hear it missed?

The checker of the "no silent loss" guarantee (docs/reliability.md). For each layer
it starts its own redis-server (no persistence) and daphne processes
(tests/support/ helpers), connects raw WebSocket clients spread over the
processes, each subscribed to every group (some keep history, some do not:
``HISTORY_GROUPS``), and publishes steadily from a separate process calling the
real sync ``realtime.notify()``; each event's data carries a per-group counter
``n``, logged with whether ``notify()`` returned (accepted) or raised. Then it runs
the fault phases, publishes a little longer, stops publishing and drains.

The clients do no gap filling of their own: they record every frame, answer
``rt.ping``, keep the last ``seq``/``epoch`` per group, and after a close reconnect
(alternately to another process, or to the same port again) and resubscribe with
``since`` and ``epoch`` (``since: 0`` for a group without history, which has no seq:
the server can only answer ``recovered: false``). The verdict
(benchmarks/integrity_verdict.py) checks, per client and group, that each accepted
event was delivered once and in order, or was covered by an explicit signal
(``rt.reset``, or an ack with ``recovered: false``) between its neighbours and after
it was published; a resubscribe acked with ``recovered: true`` must leave no hole.

Phases (each optional, in this order, each followed by ``--settle`` seconds of
steady publishing):

- ``burst``: ``--burst`` notify() calls back to back from the publisher;
- ``idle``: one group with history and one without stop getting events for
  ``--history-ttl`` + 1.5 s, then get events again;
- ``redis-restart``: redis-server stopped, down ``--outage`` seconds, started empty
  on the same port, while publishing goes on (failed calls are not accepted);
- ``kill``: the first daphne SIGKILLed and restarted on the same port;
- ``storm``: ``--storm-processes`` fresh daphne processes started while
  ``--storm-clients`` clients connect and subscribe the moment their port opens.

It prints, per layer and phase: accepted (``published``) and ``failed`` notify()
calls, (stream, event) pairs ``due`` and ``delivered``, ``silent`` losses, the
holes they form that began in the phase and those holes' events (``holes
begun/events``: a hole that goes on into later phases was caused here), losses ``told``
(covered by a signal) with the longest delay from such an event's notify() to its
signal (``late s``), duplicates (``dup``), out-of-order (``ooo``), ``rt.reset``
frames and ``recovered: false`` acks received (recoveries forced), reconnects, and
the time to recover: seconds from the fault's moment (burst end, the idle groups'
first new event, Redis stopped, the SIGKILL, the fresh port open) until each stream
received an event published after it (max / median over streams; ``never``:
streams that did not within the run). Then ``silent losses: N``, ``duplicates: N``,
``out-of-order: N`` and a few issues of each kind. Exit status 1 when any silent
loss, duplicate or out-of-order delivery was found, or a stream ended closed or
unsubscribed (the run could not judge it).

    .venv/bin/python benchmarks/integrity.py                     # everything
    .venv/bin/python benchmarks/integrity.py --layers core --phases burst,kill
    .venv/bin/python benchmarks/integrity.py --clients 40 --rate 200 --json out.json

Options: ``--layers core,pubsub`` (channels_redis.core.RedisChannelLayer,
channels_redis.pubsub.RedisPubSubChannelLayer; default both, one after the other),
``--phases burst,idle,redis-restart,kill,storm`` (default all), ``--clients 24``,
``--processes 2``, ``--history-groups 3``, ``--plain-groups 2``, ``--rate 100``
(events per second over all groups), ``--burst 1000``, ``--history-ttl 3``,
``--outage 1``, ``--settle 1.5``, ``--storm-clients 40``, ``--storm-processes 2``,
``--drain 5`` (seconds to wait for the last events), ``--json PATH`` (figures and
the first issues), ``--logs DIR`` (server and publisher logs, and each layer's
``recording.json``: every call and every frame; default a temporary directory,
kept). ``integrity.py verdict DIR/core/recording.json`` judges a saved recording
again and lists more issues. tests/e2e/test_integrity.py runs a CI-sized variant.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.integrity_verdict import (  # noqa: E402
    Phase,
    Published,
    Rec,
    Report,
    format_report,
    verify,
)

LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
PHASES = ("burst", "idle", "redis-restart", "kill", "storm")
EVENT = "test.note"  # tests/testapp/events.py: {"text", "n"}


@dataclass
class Options:
    layers: list[str] = field(default_factory=lambda: list(LAYERS))
    phases: list[str] = field(default_factory=lambda: list(PHASES))
    clients: int = 24
    processes: int = 2
    history_groups: int = 3
    plain_groups: int = 2
    rate: float = 100.0
    burst: int = 1000
    history_ttl: int = 3
    outage: float = 1.0
    settle: float = 1.5
    storm_clients: int = 40
    storm_processes: int = 2
    drain: float = 5.0


# -- the publisher: its own process, the real sync notify() ------------------------


def publisher_main(argv: list[str]) -> None:
    """``integrity.py publish``: publish steadily until told to stop; obey commands
    on stdin (``burst N``, ``pause G,G``, ``resume G,G``, ``stop``), answer each
    with one ``@`` line on stdout, and write every call to ``--out`` at the end."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    import django

    django.setup()
    import realtime

    groups = args.groups.split(",")
    counters = dict.fromkeys(groups, 0)
    calls: list[tuple[str, int, float, float, bool, str | None]] = []

    def publish(group: str) -> None:
        counters[group] += 1
        n = counters[group]
        error = None
        started = time.monotonic()
        try:
            realtime.notify(group, EVENT, {"text": "i", "n": n}, on_commit=False)
        except Exception as exc:  # any failure means "not accepted"
            error = type(exc).__name__
        calls.append((group, n, started, time.monotonic(), error is None, error))

    commands: queue.Queue[str] = queue.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            commands.put(line.strip())
        commands.put("stop")

    threading.Thread(target=read_stdin, daemon=True).start()
    paused: set[str] = set()
    interval = 1 / args.rate
    turn = 0
    print(f"@ready {time.monotonic()}", flush=True)
    due = time.monotonic()
    while True:
        try:
            command = commands.get_nowait()
        except queue.Empty:
            command = ""
        if command == "stop":
            break
        if command.startswith("burst "):
            started = time.monotonic()
            for i in range(int(command.split()[1])):
                publish(groups[i % len(groups)])
            print(f"@burst {started} {time.monotonic()}", flush=True)
            due = time.monotonic()
        elif command.startswith(("pause ", "resume ")):
            verb, names = command.split()
            changed = set(names.split(","))
            paused = paused | changed if verb == "pause" else paused - changed
            print(f"@{verb} {time.monotonic()}", flush=True)
        active = [g for g in groups if g not in paused]
        if active:
            publish(active[turn % len(active)])
            turn += 1
        due += interval
        late = time.monotonic() - due
        if late > 1:
            due = time.monotonic()  # after a stall (Redis down): no catch-up burst
        elif late < 0:
            time.sleep(-late)
    Path(args.out).write_bytes(orjson.dumps(calls))
    print("@stopped", flush=True)


class Publisher:
    """The checker's handle on the publisher process."""

    def __init__(self, env: dict[str, str], groups: list[str], rate: float, log: Path):
        self.env, self.groups, self.rate, self.log = env, groups, rate, log
        self.out = log.with_suffix(".json")
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> float:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).resolve()),
            "publish",
            "--groups",
            ",".join(self.groups),
            "--rate",
            str(self.rate),
            "--out",
            str(self.out),
            cwd=ROOT,
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self.log.open("w"),
        )
        return float((await self._reply("ready"))[0])

    async def command(self, line: str) -> list[str]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        await self.proc.stdin.drain()
        return await self._reply(line.split()[0])

    async def _reply(self, verb: str, timeout: float = 30) -> list[str]:
        assert self.proc is not None and self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.proc.stdout.readline()).decode()
                if not line:
                    raise RuntimeError(f"publisher exited; see {self.log}")
                if line.startswith(f"@{verb}"):
                    return line.split()[1:]

    async def stop(self) -> list[Published]:
        await self.command("stop")
        assert self.proc is not None
        await asyncio.wait_for(self.proc.wait(), 10)
        return [Published(*call) for call in orjson.loads(self.out.read_bytes())]

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()


# -- the clients ---------------------------------------------------------------------


class Recorder:
    """A raw client: records everything, fills no gap, resubscribes with since."""

    def __init__(
        self,
        name: str,
        urls: list[str],
        groups: list[str],
        *,
        start: int = 0,
        sticky: bool = False,
        compress: bool = False,
        retry: float = 0.05,
    ) -> None:
        self.name, self.urls, self.groups = name, urls, groups
        self.index, self.sticky, self.compress, self.retry = (
            start,
            sticky,
            compress,
            retry,
        )
        self.records: list[Rec] = []
        self.position: dict[str, tuple[int | None, str | None]] = {}
        self.highest: dict[str, int] = {}
        self.acked: set[str] = set()  # groups acked on the current connection
        self.pending: dict[str, str] = {}  # subscribe id -> group
        self.ws: Any = None
        self.stopping = False
        self.retries: set[asyncio.Future] = set()
        self._ids = 0

    def subscribed(self) -> bool:
        return len(self.acked) == len(self.groups)

    def record(self, kind: str, **kw: Any) -> None:
        self.records.append(Rec(time.monotonic(), kind, **kw))

    async def run(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        failing_since: float | None = None
        attempts = 0
        while not self.stopping:
            url = self.urls[self.index]
            try:
                self.ws = await connect(
                    url,
                    open_timeout=5,
                    ping_interval=None,
                    max_size=None,
                    compression="deflate" if self.compress else None,
                )
            except Exception:
                attempts += 1
                now = time.monotonic()
                failing_since = failing_since or now
                # Sticky clients wait for their own port to come back, for a while.
                if not self.sticky or now - failing_since > 3:
                    self.index = (self.index + 1) % len(self.urls)
                await asyncio.sleep(min(self.retry * attempts, 0.5))
                continue
            failing_since, attempts = None, 0
            self.acked.clear()
            self.pending.clear()
            self.record("open", code=url)
            code: int | None = None
            try:
                for group in self.groups:
                    await self._subscribe(group)
                async for raw in self.ws:
                    await self._handle(orjson.loads(raw))
                code = self.ws.close_code
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else 1006
            except OSError:
                code = 1006
            if self.stopping:
                break
            self.record("close", code=code)
            self.acked.clear()
            if not self.sticky:
                self.index = (self.index + 1) % len(self.urls)
            await asyncio.sleep(self.retry)
        self.record("end")

    async def _subscribe(self, group: str) -> None:
        self._ids += 1
        frame_id = f"s{self._ids}"
        data: dict[str, Any] = {"group": group}
        if group in self.position:
            seq, epoch = self.position[group]
            data["since"] = seq or 0
            if epoch is not None:
                data["epoch"] = epoch
        self.pending[frame_id] = group
        self.record("sub", group=group, seq=data.get("since"), epoch=data.get("epoch"))
        await self.ws.send(
            orjson.dumps(
                {"type": "rt.subscribe", "id": frame_id, "data": data}
            ).decode()
        )

    async def _resubscribe_later(self, group: str, ws: Any) -> None:
        await asyncio.sleep(0.2)
        if ws is self.ws and not self.stopping:
            with contextlib.suppress(Exception):
                await self._subscribe(group)

    async def _handle(self, frame: dict) -> None:
        kind = frame.get("type")
        data = frame.get("data") or {}
        if kind == "rt.ping":
            # Echo the nonce: only such a pong acknowledges what was read.
            await self.ws.send(orjson.dumps({"type": "rt.pong", "data": data}).decode())
            return
        if kind in ("rt.ack", "rt.error") and frame.get("id") in self.pending:
            group = self.pending.pop(frame["id"])
            if kind == "rt.error":
                self.record("error", group=group, code=data.get("code"))
                retry = asyncio.ensure_future(self._resubscribe_later(group, self.ws))
                self.retries.add(retry)
                retry.add_done_callback(self.retries.discard)
                return
            seq, epoch = data.get("seq"), data.get("epoch")
            self.record(
                "ack",
                group=group,
                seq=seq,
                epoch=epoch,
                recovered=data.get("recovered"),
            )
            self.position[group] = (seq, epoch)
            self.acked.add(group)
        elif kind == "rt.reset":
            group = frame.get("group")
            seq, epoch = data.get("seq"), data.get("epoch")
            self.record(
                "reset", group=group, seq=seq, epoch=epoch, code=data.get("reason")
            )
            self.position[group] = (seq, epoch)
        elif kind == "rt.error":
            self.record("error", code=data.get("code"))
        elif kind == EVENT:
            group, seq, n = frame.get("group"), frame.get("seq"), data.get("n")
            self.record("event", group=group, seq=seq, n=n)
            if seq is not None:
                self.position[group] = (seq, self.position.get(group, (0, None))[1])
            self.highest[group] = max(n, self.highest.get(group, 0))

    async def stop(self) -> None:
        self.stopping = True
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()


# -- one run per layer ---------------------------------------------------------------


async def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)


@dataclass
class LayerResult:
    layer: str
    report: Report
    info: dict[str, Any]

    def summary(self) -> str:
        info = ", ".join(f"{k} {v}" for k, v in self.info.items())
        return format_report(
            f"== layer {self.layer} ({LAYERS[self.layer]}): {info}", self.report
        )


async def run_layer(layer: str, options: Options, db: Path, logs: Path) -> LayerResult:
    """One full run (servers, clients, publisher, phases, drain) on ``layer``."""
    from tests.support.processes import free_port
    from tests.support.redis_server import RedisServer
    from tests.support.servers import DaphneFactory

    logs.mkdir(parents=True, exist_ok=True)
    history = [f"public.h-{i}" for i in range(options.history_groups)]
    plain = [f"public.x-{i}" for i in range(options.plain_groups)]
    groups = history + plain
    settings: dict[str, Any] = {
        "RATE": 1000.0,
        "BURST": 1000,
        "HISTORY_TTL": options.history_ttl,
        "HISTORY_GROUPS": ["public.h-*"],
        "NOTIFY_TIMEOUT": 1.0,
    }
    redis = RedisServer()
    factory = DaphneFactory(db, logs)
    publisher: Publisher | None = None
    recorders: list[Recorder] = []
    tasks: list[asyncio.Task] = []

    def daphne(port: int | None = None) -> Any:
        return factory(redis_url=redis.url, layer=LAYERS[layer], port=port, **settings)

    def start(recorder: Recorder) -> None:
        recorders.append(recorder)
        tasks.append(asyncio.create_task(recorder.run()))

    try:
        await asyncio.to_thread(redis.start)
        servers = [await asyncio.to_thread(daphne) for _ in range(options.processes)]
        urls = [f"{s.url}/ws/" for s in servers]
        for i in range(options.clients):
            start(
                Recorder(
                    f"c{i}",
                    urls,
                    groups,
                    start=i % len(urls),
                    sticky=i % 4 in (1, 2),  # some wait for their own port
                    compress=i % 2 == 1,
                )
            )
        await wait_until(
            lambda: all(r.subscribed() for r in recorders), 30, "clients subscribed"
        )
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.e2e_settings",
            "RT_TEST_DB": str(db),
            "REDIS_URL": redis.url,
            "RT_LAYER": LAYERS[layer],
            **{
                f"RT_SET_{k}": json.dumps(v) if isinstance(v, list) else str(v)
                for k, v in settings.items()
            },
        }
        env.pop("PYTEST_CURRENT_TEST", None)
        publisher = Publisher(env, groups, options.rate, logs / "publisher.log")
        phases = [Phase("steady", await publisher.start())]
        await asyncio.sleep(options.settle)

        if "burst" in options.phases:
            t0, t1 = map(float, await publisher.command(f"burst {options.burst}"))
            phases.append(Phase("burst", t0, t_ref=t1))
            await asyncio.sleep(options.settle)
        if "idle" in options.phases:
            idle = history[:1] + plain[:1]
            (paused,) = map(float, await publisher.command(f"pause {','.join(idle)}"))
            phase = Phase("idle", paused, groups=idle)
            phases.append(phase)
            await asyncio.sleep(options.history_ttl + 1.5)
            (phase.t_ref,) = map(
                float, await publisher.command(f"resume {','.join(idle)}")
            )
            await asyncio.sleep(options.settle)
        if "redis-restart" in options.phases:
            now = time.monotonic()
            phases.append(Phase("redis-restart", now, t_ref=now))
            await asyncio.to_thread(redis.stop)
            await asyncio.sleep(options.outage)
            await asyncio.to_thread(redis.start)
            # The processes notice with a back-off of up to 2 s (realtime.hub).
            await asyncio.sleep(options.settle + 2)
        if "kill" in options.phases:
            victim = servers[0]
            now = time.monotonic()
            phases.append(Phase("kill", now, t_ref=now))
            victim.kill()
            servers[0] = await asyncio.to_thread(daphne, victim.port)
            await asyncio.sleep(options.settle)
        if "storm" in options.phases:
            ports = [free_port() for _ in range(options.storm_processes)]
            fresh = [f"ws://127.0.0.1:{port}/ws/" for port in ports]
            storm = [
                Recorder(
                    f"s{i}",
                    fresh,
                    groups,
                    start=i % len(fresh),
                    sticky=True,
                    compress=i % 2 == 1,
                    retry=0.01,
                )
                for i in range(options.storm_clients)
            ]
            phase = Phase("storm", time.monotonic())
            phases.append(phase)
            for recorder in storm:
                start(recorder)
            for port in ports:
                servers.append(await asyncio.to_thread(daphne, port))
                phase.t_ref = phase.t_ref or time.monotonic()
            await wait_until(
                lambda: all(r.subscribed() for r in storm), 30, "storm subscribed"
            )
            await asyncio.sleep(options.settle)

        await asyncio.sleep(options.settle)
        published = await publisher.stop()
        last = {
            g: max((c.n for c in published if c.group == g and c.ok), default=0)
            for g in groups
        }
        drain_started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await wait_until(
                lambda: all(
                    r.highest.get(g, 0) >= last[g] for r in recorders for g in groups
                ),
                options.drain,
                "drained",
            )
        drained = time.monotonic() - drain_started
    finally:
        for recorder in recorders:
            await recorder.stop()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        for task in tasks:
            task.cancel()
        if publisher is not None:
            publisher.kill()
        await asyncio.to_thread(factory.stop_all)
        await asyncio.to_thread(redis.stop)
        shutil.rmtree(redis.dir, ignore_errors=True)

    recordings = {r.name: r.records for r in recorders}
    subscribed = {r.name: r.groups for r in recorders}
    (logs / "recording.json").write_bytes(
        orjson.dumps(
            {
                "published": [list(call) for call in published],
                "recordings": {
                    name: [list(rec) for rec in records]
                    for name, records in recordings.items()
                },
                "groups": subscribed,
                "phases": [asdict(p) for p in phases],
            }
        )
    )
    report = verify(published, recordings, subscribed, phases)
    info = {
        "clients": len(recorders),
        "processes": options.processes,
        "groups": f"{len(history)} with history + {len(plain)} without",
        "drain s": round(drained, 2),
    }
    return LayerResult(layer, report, info)


async def run(options: Options, db: Path, logs: Path) -> list[LayerResult]:
    return [
        await run_layer(layer, options, db, logs / layer) for layer in options.layers
    ]


def totals(results: list[LayerResult]) -> str:
    """The closing lines: the figures the verdict is about, over all layers."""
    silent = sum(r.report.total.silent for r in results)
    dup = sum(r.report.total.duplicates for r in results)
    ooo = sum(r.report.total.out_of_order for r in results)
    verdict = "FAIL" if any(r.report.failed for r in results) else "OK"
    return (
        f"== all layers: silent losses: {silent}, duplicates: {dup}, "
        f"out-of-order: {ooo}: {verdict}"
    )


def as_json(results: list[LayerResult]) -> dict[str, Any]:
    return {
        r.layer: {
            "info": r.info,
            "phases": {name: asdict(t) for name, t in r.report.phases.items()},
            "total": asdict(r.report.total),
            "incomplete": r.report.incomplete,
            "unsubscribed": r.report.unsubscribed,
            "notify_errors": r.report.errors,
            "issues": [i._asdict() for i in r.report.issues[:200]],
        }
        for r in results
    }


def migrated_db(directory: Path) -> Path:
    db = directory / "db.sqlite3"
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v", "0"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.e2e_settings",
            "RT_TEST_DB": str(db),
        },
        check=True,
    )
    return db


def verdict_main(path: Path) -> int:
    """``integrity.py verdict DIR/recording.json``: judge a saved run again."""
    saved = orjson.loads(path.read_bytes())
    report = verify(
        [Published(*call) for call in saved["published"]],
        {
            name: [Rec(*rec) for rec in records]
            for name, records in saved["recordings"].items()
        },
        saved["groups"],
        [Phase(**phase) for phase in saved["phases"]],
    )
    print(format_report(f"== {path}", report, samples=40))
    return 1 if report.failed else 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["publish"]:
        publisher_main(argv[1:])
        return 0
    if argv[:1] == ["verdict"]:
        return verdict_main(Path(argv[1]))
    defaults = Options()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", default=",".join(defaults.layers))
    parser.add_argument("--phases", default=",".join(defaults.phases))
    for name in (
        "clients",
        "processes",
        "history_groups",
        "plain_groups",
        "burst",
        "history_ttl",
        "storm_clients",
        "storm_processes",
    ):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name)
        )
    for name in ("rate", "outage", "settle", "drain"):
        parser.add_argument(f"--{name}", type=float, default=getattr(defaults, name))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--logs", type=Path)
    args = parser.parse_args(argv)
    layers = [x for x in args.layers.split(",") if x]
    phases = [x for x in args.phases.split(",") if x]
    unknown = [x for x in layers if x not in LAYERS] + [
        x for x in phases if x not in PHASES
    ]
    if unknown:
        parser.error(f"unknown layer or phase: {unknown}")
    options = Options(
        layers=layers,
        phases=phases,
        **{
            name: getattr(args, name)
            for name in Options.__dataclass_fields__
            if name not in ("layers", "phases")
        },
    )
    logs = args.logs or Path(tempfile.mkdtemp(prefix="rt-integrity-"))
    logs.mkdir(parents=True, exist_ok=True)
    db = migrated_db(logs)
    results = asyncio.run(run(options, db, logs))
    for result in results:
        print(result.summary())
        print()
    print(totals(results))
    print(f"logs: {logs}")
    if args.json:
        args.json.write_text(json.dumps(as_json(results), indent=1))
    return 1 if any(r.report.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
