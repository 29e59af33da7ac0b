"""Fan-out benchmark: one event to thousands of sockets, ours beside plain Channels.

Starts its own redis-server on a free port, K server processes (daphne or uvicorn),
N WebSocket clients in several Node processes (``ws``, see fanout_client.mjs) all
subscribed to one group, and publishes M events at R events/s with ``notify()`` from
a separate process. The same scenario then runs against the baseline: a plain
Channels ``AsyncJsonWebsocketConsumer`` (``group_add`` + ``group_send``, channels-redis
defaults, benchmarks/baseline_app). ``--peers`` adds other stacks doing the same job:
python-socketio with its Redis manager behind uvicorn (benchmarks/peers/socketio_app.py)
and a hand-written Node ``ws`` server on Redis pub/sub (benchmarks/peers/ws_server.mjs).
Only 127.0.0.1 is used; every phase has a deadline.

Usage (after the README install; ``npm ci --prefix benchmarks`` runs by itself)::

    .venv/bin/python benchmarks/fanout.py                      # all scenarios
    .venv/bin/python benchmarks/fanout.py --scenarios 1k --server uvicorn
    .venv/bin/python benchmarks/fanout.py --connections 200 --rate 20 --duration 2
    .venv/bin/python benchmarks/fanout.py --scenarios 1k --peers socketio,node

See docs/benchmarks.md for what each figure means and the results.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GROUP = "bench.fanout"
RECOVERY_GROUP = "bench.recovery"
APPS = {
    "realtime": "benchmarks.realtime_app",
    "baseline": "benchmarks.baseline_app",
}
# Peers run on their own servers whatever --server says: name -> column title.
PEERS = {
    "socketio": "python-socketio (uvicorn)",
    "node": "node ws",
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Scenario:
    name: str
    connections: int
    rate: float  # events per second offered
    duration: float  # seconds of publishing
    drain: float  # seconds to wait for stragglers after the last publish

    @property
    def events(self) -> int:
        return max(1, round(self.rate * self.duration))


SCENARIOS = {
    "1k": Scenario("1,000 sockets x 50 events/s", 1000, 50, 10, 10),
    # Offered 100,000 deliveries/s: more than 2 cores deliver, so this measures
    # the most each stack gets through (and its CPU per delivery).
    "5k": Scenario("5,000 sockets saturated", 5000, 20, 5, 15),
    "light": Scenario("1,000 sockets x 2 events/s", 1000, 2, 10, 5),
}


@dataclass
class Stack:
    name: str
    app: str  # key of APPS or PEERS
    layer: str  # pubsub | core


@dataclass
class Result:
    stack: str
    load: tuple[float, float, float]
    connected: int = 0
    setup_per_s: float = 0.0
    setup_cpu_ms: float = 0.0
    rss_per_conn_kb: float = 0.0
    deliveries: int = 0
    expected: int = 0
    dups: int = 0
    reordered: int = 0
    closed: dict = field(default_factory=dict)
    per_s: float = 0.0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    cpu_us: float = math.nan
    client_cpu_s: float = 0.0
    wire_bytes: float = math.nan
    window_s: float = 0.0
    drained: bool = False

    @property
    def lost(self) -> int:
        return self.expected - self.deliveries


# -- processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:4]} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", str(workdir)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc)
    return proc, f"redis://127.0.0.1:{port}/0"


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()


# --deflate and --payload, set once by main() (servers and publisher read them).
DEFLATE = "off"
PAYLOAD = 0


def env_for(app: str, redis_url: str, layer: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if DEFLATE == "shared":
        env["BENCH_COMPRESSION"] = "1"  # REALTIME["COMPRESSION"]
    env["BENCH_PAYLOAD"] = str(PAYLOAD)
    if app in APPS:
        env["DJANGO_SETTINGS_MODULE"] = f"{APPS[app]}.settings"
    env["REDIS_URL"] = redis_url  # the peers'
    env["BENCH_REDIS_URL"], env["BENCH_LAYER"] = redis_url, layer
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), env.get("PYTHONPATH")])
    )
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def start_servers(
    stack: Stack, server: str, count: int, redis_url: str, logs: Path
) -> list[tuple[subprocess.Popen, int]]:
    if stack.app == "socketio":
        server, target = "uvicorn", "benchmarks.peers.socketio_app:application"
    elif stack.app == "node":
        server, target = "node", str(HERE / "peers" / "ws_server.mjs")
    else:
        target = f"{APPS.get(stack.app)}.asgi:application"
    started = []
    for i in range(count):
        port = free_port()
        if server == "node":
            cmd = ["node", target, str(port), redis_url]
        elif server == "uvicorn":
            cmd = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1"]
            cmd += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
            cmd += [target]
        else:
            cmd = [sys.executable, "-m", "daphne", *daphne_listen(port), target]
        log = (logs / f"{stack.app}-{stack.layer}-{server}-{i}.log").open("w")
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env_for(stack.app, redis_url, stack.layer),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append((proc, port))
    for proc, port in started:
        wait_for_port(port, proc)
    return started


#: daphne's listen queue, as docs/deploying.md sets it up for production. Its
#: ``-b``/``-p`` options take Twisted's default of 50: a burst of handshakes
#: overflows it and each dropped connection request comes back only after the
#: client's TCP retries it a second later (uvicorn's default is 2048).
DAPHNE_BACKLOG = 4096


def daphne_listen(port: int, backlog: int = DAPHNE_BACKLOG) -> list[str]:
    """daphne's arguments to listen on 127.0.0.1:``port`` with a queue of ``backlog``
    (an endpoint string is the only way to set it)."""
    return ["-e", f"tcp:port={port}:interface=127.0.0.1:backlog={backlog}"]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    # Fields after the parenthesised command name: utime and stime are 14 and 15.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def ensure_node_client() -> None:
    if shutil.which("node") is None:
        sys.exit("node is not installed: the load client runs on Node (18+)")
    # Every dependency, not just ws: a node_modules from before a new one was added
    # (the node peer's redis) must be brought up to date too.
    needed = json.loads((HERE / "package.json").read_text())["dependencies"]
    if not all((HERE / "node_modules" / name).is_dir() for name in needed):
        subprocess.run(
            ["npm", "ci", "--prefix", str(HERE), "--no-audit", "--no-fund"],
            check=True,
            stdout=subprocess.DEVNULL,
        )


class Client:
    """One Node load-client process; its JSON lines arrive on a queue."""

    def __init__(self, cfg: dict) -> None:
        self.proc = subprocess.Popen(
            ["node", str(HERE / "fanout_client.mjs"), json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                pass
        self.lines.put({"eof": True})

    def command(self, text: str) -> None:
        try:
            self.proc.stdin.write(text + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def wait_for(self, key: str, deadline: float) -> dict | None:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                return None
            if key in line:
                return line[key]
            if "eof" in line:
                return None

    def close(self) -> None:
        self.command("exit")
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def ws_url(app: str, port: int) -> str:
    if app == "socketio":
        return f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    return f"ws://127.0.0.1:{port}/" + ("" if app == "node" else "ws/")


def warm_up(app: str, urls: list[str]) -> None:
    """One subscribed socket per server, so lazy imports and Redis connections are
    in place before the idle-memory baseline is read."""
    from websockets.sync.client import connect

    for url in urls:
        with connect(url, open_timeout=10, compression=None) as ws:
            if app == "socketio":  # the handshake fanout_client.mjs speaks
                ws.recv(10)  # 0{...}: Engine.IO open
                ws.send("40")
                ws.recv(10)  # 40{"sid": ...}
                ws.send("420" + json.dumps(["subscribe", GROUP]))
                while not str(ws.recv(10)).startswith("430"):
                    pass
                continue
            if app == "realtime":
                ws.recv(10)  # rt.welcome
                sub = {"type": "rt.subscribe", "id": "w", "data": {"group": GROUP}}
                ws.send(json.dumps(sub))
            elif app == "node":
                ws.send(json.dumps({"type": "subscribe", "group": GROUP}))
            while json.loads(ws.recv(10)).get("type") not in ("rt.ack", "ready", "ack"):
                pass


def publish(
    stack: Stack, redis_url: str, group: str, count: int, rate: float, *, warm_up: bool
) -> dict:
    """Run the publisher process; return its report ({start, end, sent})."""
    cmd = [sys.executable, str(HERE / "fanout.py"), "publish", "--app", stack.app]
    cmd += ["--group", group, "--count", str(count), "--rate", str(rate)]
    if warm_up:
        cmd.append("--warm-up")
    done = subprocess.run(
        cmd,
        cwd=ROOT,
        env=env_for(stack.app, redis_url, stack.layer),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"publisher failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- one scenario on one stack ----------------------------------------------------------


def percentile(hist: dict[int, int], scale: int, q: float) -> float:
    total = sum(hist.values())
    if not total:
        return math.nan
    rank, seen = q * total, 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            # Upper edge of the bucket: never flatters the figure.
            return math.expm1((bucket + 1) / scale)
    return math.nan


def run_stack(
    stack: Stack, scenario: Scenario, args: argparse.Namespace, redis_url: str
) -> Result:
    flush_redis(redis_url)
    result = Result(stack.name, os.getloadavg())
    logs = Path(args.workdir)
    servers = start_servers(stack, args.server, args.processes, redis_url, logs)
    pids = [proc.pid for proc, _ in servers]
    urls = [ws_url(stack.app, port) for _, port in servers]
    clients: list[Client] = []
    try:
        warm_up(stack.app, urls)
        time.sleep(0.5)
        rss_before = sum(rss_kb(pid) for pid in pids)
        setup_cpu = sum(cpu_seconds(pid) for pid in pids)
        share, extra = divmod(scenario.connections, args.clients)
        offset = 0
        for i in range(args.clients):
            count = share + (1 if i < extra else 0)
            cfg = {
                "urls": urls,
                "count": count,
                "offset": offset,
                "mode": stack.app,
                "group": GROUP,
                "events": scenario.events,
                "concurrency": 50,
                "deflate": DEFLATE != "off",
            }
            offset += count
            clients.append(Client(cfg))
        deadline = time.monotonic() + 30 + scenario.connections / 50
        ready = [client.wait_for("ready", deadline) for client in clients]
        if any(r is None for r in ready):
            raise RuntimeError(f"{stack.name}: clients did not connect in time")
        result.connected = sum(r["count"] for r in ready)
        setup_s = (max(r["end"] for r in ready) - min(r["start"] for r in ready)) / 1000
        result.setup_per_s = result.connected / setup_s
        setup_cpu = sum(cpu_seconds(pid) for pid in pids) - setup_cpu
        result.setup_cpu_ms = setup_cpu / max(result.connected, 1) * 1000
        time.sleep(1.0)  # let connection bursts settle before reading memory
        rss_after = sum(rss_kb(pid) for pid in pids)
        result.rss_per_conn_kb = (rss_after - rss_before) / max(result.connected, 1)

        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        run_deadline = time.monotonic() + scenario.duration + scenario.drain + 30
        report = publish(
            stack, redis_url, GROUP, scenario.events, scenario.rate, warm_up=True
        )
        drain_deadline = min(run_deadline, time.monotonic() + scenario.drain)
        stats = [client.wait_for("stats", drain_deadline) for client in clients]
        result.drained = all(s is not None for s in stats)
        stop_at = time.time()
        cpu_after = sum(cpu_seconds(pid) for pid in pids)
        wire = 0
        for i, client in enumerate(clients):
            if stats[i] is None:
                client.command("report")
                stats[i] = client.wait_for("stats", time.monotonic() + 10) or {}
    finally:
        for client in clients:
            client.close()
        for proc, _ in servers:
            stop(proc)

    hist: dict[int, int] = {}
    scale = 300
    for s in stats:
        result.deliveries += s.get("received", 0)
        result.dups += s.get("dups", 0)
        result.reordered += s.get("reordered", 0)
        result.client_cpu_s += s.get("cpu_s", 0.0)
        wire += s.get("bytes", 0)
        for code, n in s.get("closes", {}).items():
            result.closed[code] = result.closed.get(code, 0) + n
        for bucket, n in s.get("hist", []):
            hist[bucket] = hist.get(bucket, 0) + n
        scale = s.get("scale", scale)
    result.expected = result.connected * scenario.events
    last = max((s.get("lastRecv", 0) for s in stats), default=0) / 1000
    end = last if result.drained else stop_at
    result.window_s = max(end - report["start"], 1e-3)
    result.per_s = result.deliveries / result.window_s
    result.wire_bytes = wire / max(result.deliveries, 1)
    result.p50_ms = percentile(hist, scale, 0.50)
    result.p99_ms = percentile(hist, scale, 0.99)
    result.max_ms = percentile(hist, scale, 1.0)
    if result.deliveries:
        result.cpu_us = (cpu_after - cpu_before) / result.deliveries * 1e6
    return result


def measure_recovery(args: argparse.Namespace, redis_url: str, missed: int) -> dict:
    """Time for a client to get ``missed`` events back after reconnecting elsewhere."""
    from websockets.sync.client import connect

    stack = Stack("realtime", "realtime", args.layer)
    flush_redis(redis_url)
    servers = start_servers(
        stack, args.server, max(args.processes, 2), redis_url, Path(args.workdir)
    )
    urls = [f"ws://127.0.0.1:{port}/ws/" for _, port in servers]

    def subscribe(ws: Any, data: dict) -> dict:
        ws.recv(10)  # rt.welcome
        ws.send(json.dumps({"type": "rt.subscribe", "id": "r", "data": data}))
        while True:
            frame = json.loads(ws.recv(10))
            if frame.get("id") == "r":
                return frame

    try:
        with connect(urls[0], open_timeout=10, compression=None) as ws:
            ack = subscribe(ws, {"group": RECOVERY_GROUP})["data"]
        publish(stack, redis_url, RECOVERY_GROUP, missed, 0, warm_up=False)
        with connect(urls[-1], open_timeout=10, compression=None) as ws:
            start = time.perf_counter()
            since = {
                "group": RECOVERY_GROUP,
                "since": ack["seq"],
                "epoch": ack["epoch"],
            }
            resumed = subscribe(ws, since)
            numbers = []
            while len(numbers) < missed:
                frame = json.loads(ws.recv(10))
                if frame.get("type") == "bench.tick":
                    numbers.append(frame["data"]["n"])
            elapsed = time.perf_counter() - start
    finally:
        for proc, _ in servers:
            stop(proc)
    return {
        "missed": missed,
        "ms": elapsed * 1000,
        "recovered": resumed["data"]["recovered"],
        "in_order_once": numbers == list(range(missed)),
        "load": os.getloadavg(),
    }


# -- output ----------------------------------------------------------------------------


def fmt(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def ratio(ours: float, other: float, *, lower_is_better: bool = False) -> str:
    if not other or not ours or math.isnan(ours) or math.isnan(other):
        return "-"
    return f"{(other / ours) if lower_is_better else (ours / other):.1f}x"


ROWS = [
    ("deliveries/s", "per_s", 0, False),
    ("latency p50 ms", "p50_ms", 1, True),
    ("latency p99 ms", "p99_ms", 1, True),
    ("latency max ms", "max_ms", 1, True),
    ("delivered / offered", None, 0, False),
    ("lost (not delivered by the deadline)", "lost", 0, True),
    ("duplicated", "dups", 0, True),
    ("server CPU µs per delivery", "cpu_us", 1, True),
    ("connection setup /s", "setup_per_s", 0, False),
    ("server CPU ms per connection setup", "setup_cpu_ms", 2, True),
    ("idle RSS per connection KB", "rss_per_conn_kb", 1, True),
    ("load client CPU s", "client_cpu_s", 1, True),
    ("bytes read per delivery (handshakes included)", "wire_bytes", 1, True),
]


def print_table(
    scenario: Scenario, results: list[Result], args: argparse.Namespace
) -> None:
    ours = results[0]
    peers = "; peers on their own servers" if args.peers else ""
    print(
        f"\n## {scenario.name}: {scenario.connections} sockets, {scenario.events} "
        f"events at {scenario.rate:g}/s, {args.processes} x {args.server}{peers}"
    )
    head = ["metric", *[r.stack for r in results]]
    head += [f"ours vs {r.stack}" for r in results[1:]]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for label, attr, digits, lower in ROWS:
        if attr is None:
            cells = [f"{r.deliveries:,} / {r.expected:,}" for r in results]
            print("| " + " | ".join([label, *cells, *["" for _ in results[1:]]]) + " |")
            continue
        values = [getattr(r, attr) for r in results]
        cells = [fmt(v, digits) for v in values]
        ratios = [
            ratio(values[0], v, lower_is_better=lower)
            if attr not in ("lost", "dups")
            else ""
            for v in values[1:]
        ]
        print("| " + " | ".join([label, *cells, *ratios]) + " |")
    for r in results:
        notes = []
        if r.closed:
            notes.append(f"closed by server: {r.closed}")
        if r.reordered:
            notes.append(f"out of order: {r.reordered}")
        if not r.drained:
            notes.append(
                f"not drained: stopped {r.window_s:.1f} s after the first publish"
            )
        load = " ".join(f"{x:.2f}" for x in r.load)
        print(
            f"- {r.stack}: loadavg {load}" + ("; " + "; ".join(notes) if notes else "")
        )
    del ours


# -- the publisher process ---------------------------------------------------------------


def publisher_main(args: argparse.Namespace) -> None:
    """Publish ``count`` events at ``rate``/s (0: as fast as possible); print times."""
    sys.path.insert(0, str(ROOT))
    if args.app in APPS:
        import django

        django.setup()
    # --payload: chat-like text of about that many bytes (words drawn at random,
    # so the text never repeats and compresses as real text does).
    words = sorted({w for w in (ROOT / "README.md").read_text().split() if w.isalpha()})
    rng = random.Random(42)

    def text() -> str:
        out: list[str] = []
        while sum(len(w) + 1 for w in out) < PAYLOAD:
            out.append(rng.choice(words))
        return " ".join(out)

    def tick(n: int) -> dict[str, Any]:
        data: dict[str, Any] = {"n": n, "t": time.time()}
        if PAYLOAD:
            data["text"] = text()
        return data

    if args.app == "socketio":
        from benchmarks.peers.socketio_app import publisher

        manager = publisher(os.environ["REDIS_URL"])

        def send(n: int) -> None:
            manager.emit("event", tick(n), room=args.group)

    elif args.app == "node":
        import redis

        client = redis.Redis.from_url(os.environ["REDIS_URL"])

        def send(n: int) -> None:
            event = {"type": "bench.tick", "data": tick(n)}
            client.publish(args.group, json.dumps(event))

    elif args.app == "realtime":
        import realtime

        def send(n: int) -> None:
            realtime.notify(args.group, "bench.tick", tick(n))

    else:
        import asyncio

        from channels.layers import get_channel_layer

        loop = asyncio.new_event_loop()
        layer = get_channel_layer()

        def send(n: int) -> None:
            message = {"type": "bench.tick", "data": {"n": n, "t": time.time()}}
            loop.run_until_complete(layer.group_send(args.group, message))

    if args.warm_up:
        # Connections, scripts and imports are set up by an event the clients skip
        # (n = -1), so the first timed event does not carry their cost.
        send(-1)
        time.sleep(0.2)
    send_at = time.perf_counter()
    start = time.time()
    for n in range(args.count):
        if args.rate:
            delay = send_at + n / args.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        send(n)
    print(json.dumps({"start": start, "end": time.time(), "sent": args.count}))


# -- main ----------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    pub = sub.add_parser("publish", help="(internal) the publisher process")
    pub.add_argument("--app", choices=sorted([*APPS, *PEERS]), required=True)
    pub.add_argument("--group", default=GROUP)
    pub.add_argument("--count", type=int, required=True)
    pub.add_argument("--rate", type=float, required=True)
    pub.add_argument("--warm-up", action="store_true")

    parser.add_argument(
        "--scenarios", default="1k,5k,light", help=f"of {sorted(SCENARIOS)}"
    )
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    parser.add_argument("--processes", type=int, default=2, help="server processes")
    parser.add_argument("--clients", type=int, default=3, help="load-client processes")
    parser.add_argument("--layer", choices=["pubsub", "core"], default="pubsub")
    parser.add_argument(
        "--baselines",
        default="pubsub,core",
        help="channels-redis layers for the plain-Channels baseline ('' for none)",
    )
    parser.add_argument(
        "--peers",
        default="",
        help=f"other stacks to run beside ours, of {sorted(PEERS)} (comma list)",
    )
    parser.add_argument("--connections", type=int, help="custom scenario: sockets")
    parser.add_argument("--rate", type=float, default=10, help="custom: events/s")
    parser.add_argument("--duration", type=float, default=5, help="custom: seconds")
    parser.add_argument("--drain", type=float, default=10, help="custom: seconds")
    parser.add_argument(
        "--recovery", type=int, default=1000, help="missed events (0: skip)"
    )
    parser.add_argument(
        "--deflate",
        choices=["off", "server", "shared"],
        default=os.environ.get("BENCH_DEFLATE", "off"),
        help="load clients offer permessage-deflate: compressed by the server per "
        "socket (server) or once per event (shared: REALTIME['COMPRESSION'])",
    )
    parser.add_argument(
        "--payload",
        type=int,
        default=int(os.environ.get("BENCH_PAYLOAD", "0")),
        help="bytes of chat-like text in each event",
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--keep", action="store_true", help="keep the server logs")
    return parser.parse_args()


def main() -> None:
    global DEFLATE, PAYLOAD
    args = parse_args()
    DEFLATE, PAYLOAD = args.deflate, args.payload
    if args.command == "publish":
        publisher_main(args)
        return
    ensure_node_client()
    if args.connections:
        scenarios = [
            Scenario("custom", args.connections, args.rate, args.duration, args.drain)
        ]
    else:
        scenarios = [SCENARIOS[name] for name in args.scenarios.split(",") if name]
    stacks = [Stack(f"realtime ({args.layer})", "realtime", args.layer)]
    stacks += [
        Stack(f"channels ({layer})", "baseline", layer)
        for layer in args.baselines.split(",")
        if layer
    ]
    for peer in filter(None, args.peers.split(",")):
        if peer not in PEERS:
            sys.exit(f"unknown peer {peer!r}: choose from {sorted(PEERS)}")
        if peer == "socketio":
            try:
                import socketio  # noqa: F401
            except ImportError:
                sys.exit(
                    'the socketio peer needs python-socketio: pip install -e ".[bench]"'
                )
        stacks.append(Stack(PEERS[peer], peer, "peer"))
    args.workdir = tempfile.mkdtemp(prefix="rt-fanout-")
    redis_proc, redis_url = start_redis(Path(args.workdir))
    print(
        f"# fan-out benchmark: {args.processes} x {args.server}, {args.clients} load "
        f"clients, redis {redis_url}, {os.cpu_count()} CPUs, logs in {args.workdir}"
    )
    report: dict[str, Any] = {"scenarios": {}}
    try:
        for scenario in scenarios:
            results = []
            for stack in stacks:
                print(f"... {scenario.name}: {stack.name}", file=sys.stderr, flush=True)
                results.append(run_stack(stack, scenario, args, redis_url))
            print_table(scenario, results, args)
            report["scenarios"][scenario.name] = [r.__dict__ for r in results]
        if args.recovery:
            rec = measure_recovery(args, redis_url, args.recovery)
            report["recovery"] = rec
            print(
                f"\n## recovery: {rec['missed']} missed events replayed in "
                f"{rec['ms']:.0f} ms after reconnecting to another process "
                f"(recovered={rec['recovered']}, in order and once: "
                f"{rec['in_order_once']}; loadavg {rec['load'][0]:.2f})"
            )
    finally:
        stop(redis_proc)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
