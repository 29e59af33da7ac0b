"""Connection benchmark: set-up rate, memory per idle connection, and where they go.

A connection is the WebSocket handshake, authentication, ``rt.welcome``, one
``rt.subscribe`` and its ack. For each server (daphne, uvicorn) and each size (1,000
and 5,000 sockets) K server processes are started, N Node ``ws`` clients connect
(fanout_client.mjs, 50 handshakes in flight per client process) and the script
reports connections set up per second, the servers' CPU per connection and their RSS
per idle connection. ``--floor`` measures the same exchange against a bare ASGI app
on the same server (benchmarks/peers/floor_app.py: no Django, Channels or Redis),
which is what the server costs by itself.

``--breakdown`` then runs one traced server process (benchmarks/conn_server.py:
tracemalloc, gc accounting and cProfile switched by signals) and reports where the
memory of N idle connections goes (by package and by the line that allocated it, and
live objects by type) and where the CPU of the connect burst goes. Tracing slows the
server: the figures of the breakdown are shares, not rates.

Usage (after the README install; ``npm ci --prefix benchmarks`` runs by itself)::

    .venv/bin/python benchmarks/connections.py                     # both servers
    .venv/bin/python benchmarks/connections.py --server uvicorn --sizes 1000
    .venv/bin/python benchmarks/connections.py --floor             # + the servers' floor
    .venv/bin/python benchmarks/connections.py --breakdown 1000 --sizes

Only 127.0.0.1 is used; every phase has a deadline. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fanout  # noqa: E402  (the shared process helpers)

ROOT = HERE.parent
STDLIB = Path(os.__file__).resolve().parent
STACK = fanout.Stack("realtime", "realtime", "pubsub")


# The app each run serves: realtime's fan-out app, or (--floor) the bare ASGI app
# that only does the exchange, to tell the server's own cost from the application's.
TARGETS = {
    "realtime": f"{fanout.APPS['realtime']}.asgi:application",
    "floor": "benchmarks.peers.floor_app:application",
}


def start(
    server: str,
    count: int,
    redis_url: str,
    workdir: Path,
    traced: bool,
    app: str = "realtime",
):
    target = TARGETS[app]
    env = fanout.env_for("realtime", redis_url, "pubsub")
    if traced:
        env["BENCH_TRACEMALLOC"] = "1"
    started = []
    for i in range(count):
        port = fanout.free_port()
        if server == "uvicorn":
            args = ["--host", "127.0.0.1", "--port", str(port)]
            args += ["--log-level", "warning", target]
        else:
            args = [*fanout.daphne_listen(port), target]
        log = (workdir / f"{server}-{i}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "conn_server.py"), str(workdir), server, *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append((proc, port))
    for proc, port in started:
        fanout.wait_for_port(port, proc, timeout=60)
    return started


def connect(urls: list[str], n: int, clients: int) -> tuple[list, dict]:
    """Open ``n`` subscribed sockets; return the clients (still holding them) and
    the set-up figures."""
    share, extra = divmod(n, clients)
    started, offset = [], 0
    for i in range(clients):
        count = share + (1 if i < extra else 0)
        cfg = {"urls": urls, "count": count, "offset": offset, "mode": "realtime"}
        cfg |= {"group": fanout.GROUP, "events": 0, "concurrency": 50}
        offset += count
        started.append(fanout.Client(cfg))
    deadline = time.monotonic() + 30 + n / 50
    ready = [client.wait_for("ready", deadline) for client in started]
    if any(r is None for r in ready):
        for client in started:
            client.close()
        raise RuntimeError("clients did not connect in time")
    connected = sum(r["count"] for r in ready)
    seconds = (max(r["end"] for r in ready) - min(r["start"] for r in ready)) / 1000
    failed = sum(r["failed"] for r in ready)
    return started, {"connected": connected, "failed": failed, "seconds": seconds}


def measure(
    server: str, n: int, args: argparse.Namespace, redis_url: str, app: str = "realtime"
) -> dict:
    fanout.flush_redis(redis_url)
    workdir = Path(args.workdir)
    servers = start(server, args.processes, redis_url, workdir, traced=False, app=app)
    pids = [proc.pid for proc, _ in servers]
    urls = [f"ws://127.0.0.1:{port}/ws/" for _, port in servers]
    clients: list = []
    try:
        fanout.warm_up("realtime", urls)
        time.sleep(0.5)
        rss = sum(fanout.rss_kb(pid) for pid in pids)
        cpu = sum(fanout.cpu_seconds(pid) for pid in pids)
        load = os.getloadavg()[0]
        clients, setup = connect(urls, n, args.clients)
        cpu = sum(fanout.cpu_seconds(pid) for pid in pids) - cpu
        time.sleep(1.0)  # let the burst settle before reading memory
        rss = sum(fanout.rss_kb(pid) for pid in pids) - rss
    finally:
        for client in clients:
            client.close()
        for proc, _ in servers:
            fanout.stop(proc)
    connected = max(setup["connected"], 1)
    return {
        "app": app,
        "server": server,
        "sockets": n,
        "connected": setup["connected"],
        "failed": setup["failed"],
        "per_s": setup["connected"] / setup["seconds"],
        "cpu_ms": cpu / connected * 1000,
        "kb": rss / connected,
        "load": load,
    }


# -- breakdown --------------------------------------------------------------------------


def _signal_and_wait(pid: int, sig: int, path: Path, timeout: float = 120) -> None:
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} was not written")
        time.sleep(0.1)


def where(filename: str) -> str:
    """The package (or the realtime module, or the stdlib module) of a source file."""
    path = Path(filename)
    parts = path.parts
    if "site-packages" in parts:
        return "/".join(parts[parts.index("site-packages") + 1 :])
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        pass
    try:
        return "stdlib " + "/".join(path.relative_to(STDLIB).parts)
    except ValueError:
        return filename


def owner(traceback: tracemalloc.Traceback) -> str:
    """The innermost frame outside the standard library (what asked for the memory),
    with the standard-library module that allocated it, if any."""
    frames = list(traceback)[::-1]  # most recent first
    inner = where(frames[0].filename)
    for frame in frames:
        place = where(frame.filename)
        if not place.startswith("stdlib ") and place != frame.filename:
            at = f"{place}:{frame.lineno}"
            return f"{at} (in {inner[7:]})" if inner.startswith("stdlib ") else at
    return f"{inner}:{frames[0].lineno}"


def breakdown(server: str, n: int, args: argparse.Namespace, redis_url: str) -> str:
    fanout.flush_redis(redis_url)
    workdir = Path(tempfile.mkdtemp(dir=args.workdir))
    servers = start(server, 1, redis_url, workdir, traced=True)
    ((proc, port),) = servers
    url = f"ws://127.0.0.1:{port}/ws/"
    clients: list = []
    lines = [f"### {server}: {n} idle connections, one traced process", ""]
    try:
        fanout.warm_up("realtime", [url])
        time.sleep(0.5)
        _signal_and_wait(proc.pid, signal.SIGUSR1, workdir / f"{proc.pid}-0.types.json")
        os.kill(proc.pid, signal.SIGUSR2)
        clients, setup = connect([url], n, args.clients)
        _signal_and_wait(proc.pid, signal.SIGUSR2, workdir / f"{proc.pid}.prof")
        time.sleep(1.0)
        _signal_and_wait(proc.pid, signal.SIGUSR1, workdir / f"{proc.pid}-1.types.json")
    finally:
        for client in clients:
            client.close()
        fanout.stop(proc)
    connected = max(setup["connected"], 1)
    lines.append(f"connected {setup['connected']}, failed {setup['failed']}")

    before = tracemalloc.Snapshot.load(str(workdir / f"{proc.pid}-0.snap"))
    after = tracemalloc.Snapshot.load(str(workdir / f"{proc.pid}-1.snap"))
    diffs = after.compare_to(before, "traceback")
    total = sum(d.size_diff for d in diffs)
    by_package: dict[str, int] = {}
    by_owner: dict[str, list[int]] = {}
    for d in diffs:
        package = where(list(d.traceback)[-1].filename).split("/")[0]
        if package.startswith("stdlib "):
            package = package.split("/")[0]
        by_package[package] = by_package.get(package, 0) + d.size_diff
        row = by_owner.setdefault(owner(d.traceback), [0, 0])
        row[0] += d.size_diff
        row[1] += d.count_diff
    lines += [
        "",
        f"traced Python memory per connection: {total / connected:,.0f} B",
        "",
    ]
    lines += ["| allocated in | B per connection |", "|---|---:|"]
    for package, size in sorted(by_package.items(), key=lambda kv: -kv[1])[:14]:
        lines.append(f"| {package} | {size / connected:,.0f} |")
    lines += ["", "| asked for by (innermost non-stdlib line) | B per conn | objects |"]
    lines += ["|---|---:|---:|"]
    for place, (size, count) in sorted(by_owner.items(), key=lambda kv: -kv[1][0])[
        : args.top
    ]:
        lines.append(f"| {place} | {size / connected:,.0f} | {count / connected:.2f} |")

    ours = [
        (place, row) for place, row in by_owner.items() if place.startswith("realtime/")
    ]
    ours.sort(key=lambda kv: -kv[1][0])
    mine = sum(row[0] for _, row in ours)
    lines += [
        "",
        f"of which asked for by realtime: {mine / connected:,.0f} B per connection",
    ]
    lines += ["", "| realtime line | B per conn | objects |", "|---|---:|---:|"]
    for place, (size, count) in ours[: args.top]:
        lines.append(f"| {place} | {size / connected:,.0f} | {count / connected:.2f} |")

    old = json.loads((workdir / f"{proc.pid}-0.types.json").read_text())
    new = json.loads((workdir / f"{proc.pid}-1.types.json").read_text())
    grown = {
        key: (count - old.get(key, [0, 0])[0], size - old.get(key, [0, 0])[1])
        for key, (count, size) in new.items()
    }
    lines += ["", "| live gc objects by type | per connection | getsizeof B |"]
    lines += ["|---|---:|---:|"]
    for key, (count, size) in sorted(grown.items(), key=lambda kv: -kv[1][1])[
        : args.top
    ]:
        if count <= 0:
            break
        lines.append(f"| {key} | {count / connected:.2f} | {size / connected:,.0f} |")

    stats = pstats.Stats(str(workdir / f"{proc.pid}.prof"))
    lines += ["", "| connect burst: function (cProfile, main thread) | calls/conn |"]
    lines[-1] += " own µs/conn | incl. µs/conn |"
    lines += ["|---|---:|---:|---:|"]
    # By own time: coroutines resumed many times make inclusive times overlap.
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])  # type: ignore[attr-defined]
    for (filename, lineno, name), (_, calls, own, cum, _) in rows[: args.top]:
        place = where(filename) if filename != "~" else "builtin"
        lines.append(
            f"| {place}:{lineno} {name} | {calls / connected:.1f} | "
            f"{own / connected * 1e6:,.0f} | {cum / connected * 1e6:,.0f} |"
        )
    own_total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    by_cpu: dict[str, float] = {}
    for (filename, _, _), (_, _, own, _, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if filename == "~":  # a builtin: charged to the package of its first caller
            filename = next(iter(callers), ("~",))[0]
        package = where(filename).split("/")[0] if filename != "~" else "builtin"
        by_cpu[package] = by_cpu.get(package, 0.0) + own
    lines += ["", "| connect burst: own CPU by package | µs/conn | share |"]
    lines += ["|---|---:|---:|"]
    for package, own in sorted(by_cpu.items(), key=lambda kv: -kv[1])[:12]:
        share = own / own_total * 100
        lines.append(f"| {package} | {own / connected * 1e6:,.0f} | {share:.0f} % |")
    lines.append(
        f"\nprofiled main-thread CPU: {own_total / connected * 1e6:,.0f} µs/conn"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--server", choices=["daphne", "uvicorn", "both"], default="both"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[1000, 5000], help="sockets per run"
    )
    parser.add_argument("--processes", type=int, default=2, help="server processes")
    parser.add_argument("--clients", type=int, default=3, help="load-client processes")
    parser.add_argument(
        "--breakdown", type=int, default=0, help="sockets of the traced run (0: none)"
    )
    parser.add_argument("--top", type=int, default=20, help="rows per breakdown table")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also measure the bare ASGI exchange on the same server (its floor)",
    )
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    apps = ["realtime", "floor"] if args.floor else ["realtime"]
    servers = ["daphne", "uvicorn"] if args.server == "both" else [args.server]
    fanout.ensure_node_client()
    results, reports = [], []
    with tempfile.TemporaryDirectory() as workdir:
        args.workdir = workdir
        redis, redis_url = fanout.start_redis(Path(workdir))
        try:
            for server in servers:
                for n in args.sizes:
                    for app in apps:
                        r = measure(server, n, args, redis_url, app)
                        results.append(r)
                        print(
                            f"{app} on {server}, {n} sockets x {args.processes} "
                            f"processes: {r['per_s']:,.0f} connections/s, "
                            f"{r['cpu_ms']:.2f} CPU ms each, {r['kb']:.1f} KB per "
                            f"idle connection ({r['connected']} connected, "
                            f"{r['failed']} failed, load {r['load']:.1f})",
                            flush=True,
                        )
                if args.breakdown:
                    reports.append(breakdown(server, args.breakdown, args, redis_url))
                    print("\n" + reports[-1] + "\n", flush=True)
        finally:
            fanout.stop(redis)
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": results, "breakdown": reports}))


if __name__ == "__main__":
    main()
