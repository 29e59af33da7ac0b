"""Reconnect-storm benchmark: a server process restarts under thousands of clients.

Starts its own redis-server on a free port, two server processes (daphne or uvicorn)
and N clients (default 5,000) in several Node processes, each client a real
``RealtimeClient`` from realtime.js (see storm_client.mjs) subscribed with history to
some of a few groups, while a publisher process calls ``notify()`` at a fixed rate.
Then one process is stopped with SIGTERM (its clients get close 4503), restarted on
the same port a few seconds later, and the benchmark measures:

- the time until every client of the stopped process is reconnected, resubscribed
  and recovered (every ack ``recovered: true`` and the replay up to the group's head);
- handshake errors, connect timeouts, failed recoveries;
- events lost and duplicated: each client checks its seqs per group, one by one and
  once each, up to the publisher's last event (both must be 0);
- when the clients' reconnect attempts happen (100 ms buckets after the SIGTERM: a
  peak far above the mean is a wave of synchronised clients);
- peak CPU and memory of the server processes (from /proc).

A load balancer sits between the clients and the servers in production; here each
Node process plays its part: the benchmark marks the stopped process down before the
SIGTERM and up again once it listens (as a health check would), and a client whose
server is down connects to one that is up (``--reconnect-to same`` instead makes every
client wait for its own server). Only 127.0.0.1 is used; every phase has a deadline.

Usage (after the README install; ``npm ci --prefix benchmarks`` runs by itself)::

    .venv/bin/python benchmarks/storm.py                       # 5,000 clients, daphne
    .venv/bin/python benchmarks/storm.py --clients 200 --server uvicorn
    .venv/bin/python benchmarks/storm.py --peer socketio       # then python-socketio

``--peer socketio`` then runs the same storm against python-socketio (see
storm_socketio.py) and prints both side by side on stderr.

Prints a JSON summary on stdout (``--json FILE`` also writes it). See
docs/benchmarks.md for the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.fanout import (  # noqa: E402
    APPS,
    Stack,
    cpu_seconds,
    daphne_listen,
    ensure_node_client,
    env_for,
    free_port,
    rss_kb,
    start_redis,
    stop,
    wait_for_port,
)

STACK = Stack("realtime", "realtime", "pubsub")
BUCKET_MS = 100


# -- processes ------------------------------------------------------------------------


class Server:
    """One server process on a fixed port; ``start()`` again restarts it there."""

    def __init__(
        self, index: int, args: argparse.Namespace, redis_url: str, workdir: Path
    ) -> None:
        self.index, self.args, self.redis_url = index, args, redis_url
        self.workdir = workdir
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/ws/"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def command(self) -> list[str]:
        """The server's command line after ``python``."""
        target = f"{APPS[STACK.app]}.asgi:application"
        backlog = self.args.backlog
        if self.args.server == "uvicorn":
            cmd = ["-m", "uvicorn", "--host", "127.0.0.1", "--port", str(self.port)]
            cmd += ["--log-level", "warning"]
            cmd += ["--backlog", str(backlog)] if backlog else []
        elif backlog:
            cmd = ["-m", "daphne", *daphne_listen(self.port, backlog)]
        else:  # -b/-p: Twisted's default backlog (50), as daphne runs out of the box
            cmd = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]
        cmd.append(target)
        return cmd

    def env(self) -> dict[str, str]:
        return env_for(STACK.app, self.redis_url, STACK.layer)

    def start(self) -> None:
        self.starts += 1
        log = self.workdir / f"server-{self.index}-{self.starts}.log"
        self.proc = subprocess.Popen(
            [sys.executable, *self.command()],
            cwd=ROOT,
            env=self.env(),
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, self.proc)

    def terminate(self, timeout: float = 20) -> float:
        """SIGTERM; return the seconds until the process exited."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return time.monotonic() - began


class NodeClients:
    """One Node load-client process (storm_client.mjs by default); its JSON lines on
    a queue."""

    def __init__(self, cfg: dict, script: str = "storm_client.mjs") -> None:
        self.proc = subprocess.Popen(
            ["node", str(HERE / script), json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                pass
        self.lines.put({"eof": True})

    def command(self, text: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(text + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def poll(self, key: str, timeout: float) -> dict | None:
        """The next line carrying ``key`` within ``timeout`` s (others are dropped)."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                return None
            if key in line:
                return line[key]
            if "eof" in line:
                self.lines.put(line)
                return None
        return None

    def close(self) -> None:
        self.command("exit")
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Publisher:
    """The publisher process: notify() round-robin over the groups at a fixed rate
    until told to stop; then it prints how many events each group got."""

    def __init__(self, args: argparse.Namespace, redis_url: str) -> None:
        cmd, env = self.command(args, redis_url)
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def command(
        self, args: argparse.Namespace, redis_url: str
    ) -> tuple[list[str], dict[str, str]]:
        cmd = [sys.executable, str(Path(__file__).resolve()), "publish"]
        cmd += ["--groups", ",".join(args.group_names), "--rate", str(args.rate)]
        return cmd, env_for(STACK.app, redis_url, STACK.layer)

    def finish(self) -> dict[str, int]:
        out, err = self.proc.communicate("stop\n", timeout=60)
        if self.proc.returncode != 0:
            raise RuntimeError(f"publisher failed:\n{err[-2000:]}")
        return json.loads(out.strip().splitlines()[-1])


class Sampler(threading.Thread):
    """Peak CPU (% of one core, per 250 ms) and RSS of the server processes."""

    def __init__(self, servers: list[Server], period: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.servers, self.period = servers, period
        self.peak_cpu: dict[int, float] = {}
        self.peak_total_cpu = 0.0
        self.peak_rss_kb: dict[int, int] = {}
        self.peak_total_rss_kb = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        last: dict[int, tuple[int, float, float]] = {}
        while not self.stopped.wait(self.period):
            total_cpu, total_rss, now = 0.0, 0, time.monotonic()
            for server in self.servers:
                proc = server.proc
                if proc is None or proc.poll() is not None:
                    continue
                try:
                    cpu, rss = cpu_seconds(proc.pid), rss_kb(proc.pid)
                except (OSError, IndexError, ValueError):
                    continue
                before = last.get(server.index)
                last[server.index] = (proc.pid, cpu, now)
                total_rss += rss
                i = server.index
                self.peak_rss_kb[i] = max(self.peak_rss_kb.get(i, 0), rss)
                if before and before[0] == proc.pid and now > before[2]:
                    percent = (cpu - before[1]) / (now - before[2]) * 100
                    total_cpu += percent
                    self.peak_cpu[i] = max(self.peak_cpu.get(i, 0.0), percent)
            self.peak_total_cpu = max(self.peak_total_cpu, total_cpu)
            self.peak_total_rss_kb = max(self.peak_total_rss_kb, total_rss)


# -- the run ----------------------------------------------------------------------------


def waves(attempts: list[float], bucket_ms: int = BUCKET_MS) -> dict[str, Any]:
    """How the reconnect attempts after a SIGTERM spread over time.

    ``waves`` is the busiest 100 ms bucket over the mean of the buckets from the first
    attempt to the last: near 1 is an even spread, a large value a synchronised wave.
    """
    if not attempts:
        return {"attempts": 0}
    buckets: dict[int, int] = {}
    for t in attempts:
        b = max(0, int(t // bucket_ms))
        buckets[b] = buckets.get(b, 0) + 1
    first, last = min(buckets), max(buckets)
    counts = [buckets.get(b, 0) for b in range(first, last + 1)]
    mean = len(attempts) / len(counts)
    ordered = sorted(attempts)
    return {
        "attempts": len(attempts),
        "first_ms": round(ordered[0], 1),
        "last_ms": round(ordered[-1], 1),
        "p50_ms": round(ordered[len(ordered) // 2], 1),
        "bucket_ms": bucket_ms,
        "max_per_bucket": max(counts),
        "mean_per_bucket": round(mean, 1),
        "waves": round(max(counts) / mean, 2),
        "per_bucket": {str(b * bucket_ms): n for b, n in sorted(buckets.items())},
    }


def tcp_counters() -> dict[str, int]:
    """Kernel counters of refused handshakes (system-wide: other programs count too).

    ListenOverflows: a SYN or ACK dropped because a listen queue was full; the client
    retries its SYN after 1 s, 3 s, 7 s... (TCPSynRetrans counts those retries).
    """
    wanted = ("ListenOverflows", "ListenDrops", "TCPSynRetrans")
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return {}
    for head, values in zip(lines[::2], lines[1::2], strict=False):
        if head.startswith("TcpExt:"):
            pairs = zip(head.split()[1:], values.split()[1:], strict=False)
            return {k: int(v) for k, v in pairs if k in wanted}
    return {}


def server_errors(workdir: Path) -> list[str]:
    """Error lines of the server logs: each traceback by its last line."""
    found = []
    for log in sorted(workdir.glob("server-*.log")):
        in_traceback = False
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("Traceback"):
                in_traceback = True
            elif in_traceback and line and not line.startswith((" ", "\t")):
                in_traceback = False
                if not line.startswith(("During handling", "The above exception")):
                    found.append(f"{log.name}: {line[:300]}")
                else:
                    in_traceback = True
            elif " ERROR" in line or line.startswith("ERROR"):
                found.append(f"{log.name}: {line[:300]}")
    return found


def storm(
    victim: Server,
    servers: list[Server],
    clients: list[NodeClients],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """SIGTERM ``victim``, restart it after ``--restart-after`` s; time the recovery."""
    counters = tcp_counters()
    others = [s.proc.pid for s in servers if s is not victim and s.proc is not None]
    cpu_before = sum(cpu_seconds(pid) for pid in others)
    at = time.time() * 1000
    for client in clients:
        client.command(f"mark {at} {victim.url}")
        if args.reconnect_to == "other":
            client.command(f"down {victim.url}")
    exit_s = victim.terminate()
    restart_at = time.monotonic() + max(0.0, args.restart_after - exit_s)
    restarted = False
    recovered: dict[int, float] = {}
    cpu_spent = None
    deadline = time.monotonic() + args.storm_timeout
    while time.monotonic() < deadline:
        if not restarted and time.monotonic() >= restart_at:
            victim.start()
            restarted_ms = time.time() * 1000 - at
            for client in clients:
                client.command(f"up {victim.url}")
            restarted = True
        if restarted and len(recovered) == len(clients):
            break
        for i, client in enumerate(clients):
            if i in recovered:
                continue
            line = client.poll("recovered", 0.05)
            if line is not None:
                recovered[i] = line["at"]
                if len(recovered) == len(clients):
                    # The CPU the process that stayed up spent taking them back.
                    cpu_spent = sum(cpu_seconds(pid) for pid in others) - cpu_before
    if not restarted:
        victim.start()
        restarted_ms = time.time() * 1000 - at
        for client in clients:
            client.command(f"up {victim.url}")
    after = tcp_counters()
    return {
        "victim": victim.index,
        "tcp": {k: after[k] - v for k, v in counters.items() if k in after},
        "exit_s": round(exit_s, 2),
        "cpu_s_other_process": None if cpu_spent is None else round(cpu_spent, 2),
        "restarted_ms": round(restarted_ms),
        "all_back_ms": round(max(recovered.values()) - at)
        if len(recovered) == len(clients)
        else None,
    }


@dataclass(frozen=True)
class Flavour:
    """A stack the storm runs against: its servers, publisher, clients, summary."""

    name: str
    server: type[Server]
    publisher: type[Publisher]
    client_script: str
    summarise: Callable[..., dict[str, Any]]


def run(args: argparse.Namespace, flavour: Flavour | None = None) -> dict[str, Any]:
    flavour = flavour or REALTIME
    workdir = Path(args.workdir)
    if flavour is not REALTIME:
        workdir = workdir / flavour.name
        workdir.mkdir()
    redis_proc, redis_url = start_redis(workdir)
    servers = [flavour.server(i, args, redis_url, workdir) for i in range(2)]
    clients: list[NodeClients] = []
    sampler = Sampler(servers)
    publisher = None
    summary: dict[str, Any] = {
        "clients": args.clients,
        "server": args.server,
        "processes": 2,
        "groups": args.groups,
        "groups_per_client": args.per_client,
        "rate": args.rate,
        "reconnect_to": args.reconnect_to,
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
    }
    try:
        for server in servers:
            server.start()
        urls = [server.url for server in servers]
        share, extra = divmod(args.clients, args.node)
        capacity = int(args.rate * (args.storm_timeout + 120)) + 64
        offset = 0
        started = time.monotonic()
        for i in range(args.node):
            count = share + (1 if i < extra else 0)
            cfg = {
                "urls": urls,
                "count": count,
                "offset": offset,
                "groups": args.group_names,
                "perClient": args.per_client,
                "capacity": capacity,
                "concurrency": 50,
                "mode": args.reconnect_to,
            }
            offset += count
            clients.append(NodeClients(cfg, flavour.client_script))
        ready = [c.poll("ready", 60 + args.clients / 50) for c in clients]
        if any(r is None for r in ready):
            raise RuntimeError("the clients did not all subscribe in time")
        connected = sum(r["count"] for r in ready)
        summary["connected"] = connected
        summary["setup_s"] = round(time.monotonic() - started, 2)
        if connected != args.clients:
            raise RuntimeError(f"only {connected} of {args.clients} clients subscribed")

        sampler.start()
        publisher = flavour.publisher(args, redis_url)
        time.sleep(args.before)
        summary["storms"] = []
        for victim in servers[: args.storms]:
            result = storm(victim, servers, clients, args)
            summary["storms"].append(result)
            time.sleep(args.after)

        sent = publisher.finish()
        publisher = None
        for client in clients:
            client.command(f"final {json.dumps(sent)}")
        stats = [c.poll("stats", args.drain) for c in clients]
        for i, client in enumerate(clients):
            if stats[i] is None:
                client.command("report")
                stats[i] = client.poll("stats", 10) or {}
        summary["events_sent"] = sent
    finally:
        sampler.stopped.set()
        if publisher is not None:
            publisher.proc.kill()
        for client in clients:
            client.close()
        for server in servers:
            if server.proc is not None:
                stop(server.proc)
        stop(redis_proc)

    return flavour.summarise(summary, stats, sampler, workdir, args)


def summarise(
    summary: dict[str, Any],
    stats: list[dict],
    sampler: Sampler,
    workdir: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    def total(key: str) -> int:
        return sum(s.get(key, 0) for s in stats)

    failures = {
        k: sum(s.get("failures", {}).get(k, 0) for s in stats)
        for k in ("refused", "handshake", "timeouts")
    }
    closes: dict[str, int] = {}
    for s in stats:
        for code, n in s.get("closes", {}).items():
            closes[code] = closes.get(code, 0) + n
    for i, result in enumerate(summary.get("storms", [])):
        per = [s["storms"][i] for s in stats if len(s.get("storms", [])) > i]
        back = sorted(t for p in per for t in p["recoveredMs"])
        attempts = [t for p in per for t in p["attempts"]]
        result["expected"] = sum(p["expected"] for p in per)
        result["hit"] = hit = sum(p["hit"] for p in per)
        result["back"] = len(back)
        result["recovery_failed"] = sum(p["recoveryFailed"] for p in per)
        if back:
            result["back_p50_ms"] = round(back[len(back) // 2])
            result["back_p99_ms"] = round(
                back[min(len(back) - 1, int(len(back) * 0.99))]
            )
            result["back_max_ms"] = round(back[-1])
        got = sorted(t for p in per for t in p["closesMs"])
        if got:
            result["closes_4503_ms"] = {
                "first": round(got[0]),
                "p50": round(got[len(got) // 2]),
                "last": round(got[-1]),
            }
        opened = sorted(t for p in per for t in p["openedMs"])
        if opened:
            result["reopened_ms"] = {
                "p50": round(opened[len(opened) // 2]),
                "max": round(opened[-1]),
            }
        result["gaps"] = sum(p["gaps"] for p in per)
        retries: dict[str, int] = {}
        for p in per:
            for code, n in p["subscribeRetries"].items():
                retries[code] = retries.get(code, 0) + n
        result["subscribe_retries"] = retries
        result["reconnect_attempts"] = waves(attempts)
        result["retries"] = waves([t for p in per for t in p["retries"]])
        result["attempts_per_client"] = round(len(attempts) / hit, 2) if hit else None
    errors = server_errors(workdir)
    summary.update(
        {
            "lost": total("lost"),
            "duplicated": total("dups"),
            "wire_duplicated": total("wireDups"),
            "behind_at_end": total("behind"),
            "undelivered_not_back": total("undeliveredNotBack"),
            "hit_not_back": total("hitNotBack"),
            "not_recovered": total("notRecovered"),
            "recovery_failed": sum(
                r["recovery_failed"] for r in summary.get("storms", [])
            ),
            "handshake_errors": failures["handshake"],
            "connect_timeouts": failures["timeouts"],
            "refused": failures["refused"],
            "closes": closes,
            "client_error_samples": [
                m for s in stats for m in s.get("errorSamples", [])
            ][:5],
            "server_error_lines": len(errors),
            "server_error_samples": errors[:5],
            "peak_cpu_percent": {str(k): round(v) for k, v in sampler.peak_cpu.items()},
            "peak_total_cpu_percent": round(sampler.peak_total_cpu),
            "peak_rss_mb": {
                str(k): round(v / 1024, 1) for k, v in sampler.peak_rss_kb.items()
            },
            "peak_total_rss_mb": round(sampler.peak_total_rss_kb / 1024, 1),
            "load_client_cpu_s": round(sum(s.get("cpu_s", 0.0) for s in stats), 1),
            "loadavg_after": os.getloadavg(),
        }
    )
    storms = summary.get("storms", [])
    all_back = [s.get("all_back_ms") for s in storms]
    summary["ok"] = bool(
        storms
        and None not in all_back
        and summary["lost"] == summary["duplicated"] == 0
        and summary["handshake_errors"] == 0
        and summary["hit_not_back"] == summary["not_recovered"] == 0
        and summary["recovery_failed"] == 0
        and summary["behind_at_end"] == 0
    )
    summary["goal_10s_met"] = (
        summary["ok"]
        and summary["connect_timeouts"] == 0
        and summary["server_error_lines"] == 0
        and all(ms <= 10000 for ms in all_back)
    )
    return summary


REALTIME = Flavour("realtime", Server, Publisher, "storm_client.mjs", summarise)


# -- the publisher process ---------------------------------------------------------------


def publish_paced(
    groups: list[str], rate: float, emit: Callable[[str, int, int], None]
) -> None:
    """Call ``emit(group, n, n_in_group)`` round-robin over ``groups`` at ``rate``/s
    until "stop" on stdin, then print the events sent per group (JSON)."""
    sent = dict.fromkeys(groups, 0)
    stopping = threading.Event()
    threading.Thread(
        target=lambda: (sys.stdin.readline(), stopping.set()), daemon=True
    ).start()
    began = time.perf_counter()
    n = 0
    while not stopping.is_set():
        delay = began + n / rate - time.perf_counter()
        if delay > 0:
            stopping.wait(delay)
            if stopping.is_set():
                break
        group = groups[n % len(groups)]
        emit(group, n, sent[group])
        sent[group] += 1
        n += 1
    print(json.dumps(sent))


def publisher_main(args: argparse.Namespace) -> None:
    """notify() round-robin over ``--groups`` at ``--rate``/s until "stop" on stdin."""
    import django

    django.setup()
    import realtime

    def emit(group: str, n: int, _: int) -> None:
        realtime.notify(group, "bench.tick", {"n": n, "t": time.time()})

    publish_paced(args.groups.split(","), args.rate, emit)


# -- main -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    pub = sub.add_parser("publish", help="(internal) the publisher process")
    pub.add_argument("--groups", required=True)
    pub.add_argument("--rate", type=float, required=True)

    parser.add_argument("--clients", type=int, default=5000, help="WebSocket clients")
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    parser.add_argument(
        "--node", type=int, default=3, help="Node load-client processes"
    )
    parser.add_argument("--groups", type=int, default=4, help="groups with history")
    parser.add_argument("--per-client", type=int, default=2, help="groups per client")
    parser.add_argument("--rate", type=float, default=8, help="events/s, all groups")
    parser.add_argument("--before", type=float, default=2, help="s of events first")
    parser.add_argument(
        "--restart-after", type=float, default=3, help="s from SIGTERM to restart"
    )
    parser.add_argument("--after", type=float, default=2, help="s of events after")
    parser.add_argument(
        "--storms",
        type=int,
        choices=[1, 2],
        default=1,
        help="1: restart one process; 2: then the other (a rolling restart)",
    )
    parser.add_argument(
        "--reconnect-to",
        choices=["other", "same"],
        default="other",
        help="where a client of the stopped process reconnects",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=0,
        help="listen backlog of the servers (0: the server's default)",
    )
    parser.add_argument(
        "--peer",
        choices=["socketio"],
        help="then the same storm against this stack (python-socketio), compared",
    )
    parser.add_argument("--storm-timeout", type=float, default=60)
    parser.add_argument("--drain", type=float, default=30)
    parser.add_argument("--json", help="also write the summary to this file")
    parser.add_argument("--keep", action="store_true", help="keep the server logs")
    args = parser.parse_args(argv)
    if args.command != "publish":
        args.group_names = [f"bench.storm{i}" for i in range(args.groups)]
        args.per_client = min(args.per_client, args.groups)
    return args


def main() -> None:
    args = parse_args()
    if args.command == "publish":
        publisher_main(args)
        return
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed")
    ensure_node_client()
    if args.peer == "socketio":
        from benchmarks import storm_socketio

        storm_socketio.ensure_peer()
    args.workdir = tempfile.mkdtemp(prefix="rt-storm-")
    print(f"# storm: logs in {args.workdir}", file=sys.stderr, flush=True)
    try:
        summary = run(args)
        ok = summary["ok"]
        if args.peer == "socketio":
            peer = run(args, storm_socketio.FLAVOUR)
            rows = storm_socketio.side_by_side(summary, peer)
            summary["peers"] = {"socketio": peer}
            summary["side_by_side"] = rows
            print(storm_socketio.format_side_by_side(rows), file=sys.stderr)
            # The exit status is ours: a peer that misses the mark is a finding,
            # reported above and in the summary, not a failed run.
            if not peer["ok"]:
                print("# the peer's storm was not ok (see peers)", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
