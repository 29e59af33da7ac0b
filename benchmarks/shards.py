"""notify() against one Redis and against several shards: latency and Redis work.

Starts its own redis-servers on free ports. For each layer and host count it times
sync ``notify()`` calls with history (the fast path: one script on the group's
shard), spread over many groups so every shard takes its share, and counts what
each server did per call: script round trips and commands run. Subscribers are
``--processes`` layer instances (as many daphne processes would be), each with a
channel in every group. Usage::

    .venv/bin/python benchmarks/shards.py [-n 2000] [--hosts 1,3] [--processes 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
GROUPS = [f"bench.shard-{index}" for index in range(30)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis() -> tuple[subprocess.Popen, int, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    port, workdir = free_port(), tempfile.mkdtemp(prefix="rt-bench-")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", workdir]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port, workdir
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                sys.exit("redis-server did not start")
            time.sleep(0.05)


def configure() -> None:
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "channels",
            "rest_framework",
            "realtime",
        ],
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
        },
        CHANNEL_LAYERS={},
        USE_TZ=True,
    )
    django.setup()


def server_counts(urls: list[str]) -> list[tuple[int, int]]:
    """(script calls, commands processed) of each server so far."""
    import redis

    counts = []
    for url in urls:
        with redis.Redis.from_url(url) as client:
            stats = client.info("commandstats")
            scripts = sum(
                stats.get(f"cmdstat_{name}", {}).get("calls", 0)
                for name in ("eval", "evalsha")
            )
            total = int(client.info("stats")["total_commands_processed"])
        counts.append((scripts, total))
    return counts


def measure(layer_name: str, urls: list[str], n: int, processes: int) -> dict:
    from asgiref.sync import async_to_sync
    from channels.layers import channel_layers
    from django.test import override_settings

    import realtime
    from realtime.backends.shards import state_ring
    from realtime.fastpath import fast_path
    from realtime.layers import get_layer

    config = {
        "default": {
            "BACKEND": LAYERS[layer_name],
            "CONFIG": {"hosts": urls, "capacity": 4 * n + 100},
        }
    }
    with override_settings(CHANNEL_LAYERS=config):
        channel_layers.backends = {}
        layer = get_layer()
        assert fast_path(history=True) is not None, "the fast path stepped aside"
        # Subscribers: one layer instance per simulated process.
        receivers = [layer] + [
            type(layer)(**config["default"]["CONFIG"]) for _ in range(processes - 1)
        ]

        async def join() -> None:
            for receiver in receivers:
                channel = await receiver.new_channel()
                for group in GROUPS:
                    await receiver.group_add(group, channel)

        async_to_sync(join)()
        for group in GROUPS:  # warm up: scripts loaded, connections open
            realtime.notify(group, "bench.tick", {"i": 0, "text": "warm"})
        samples = []
        before = server_counts(urls)
        for i in range(n):
            group = GROUPS[i % len(GROUPS)]
            start = time.perf_counter()
            realtime.notify(group, "bench.tick", {"i": i, "text": "hello from a view"})
            samples.append((time.perf_counter() - start) * 1000)
        after = server_counts(urls)
        ring = state_ring()
        spread = [0] * len(urls)
        for i in range(n):
            spread[ring.of_group(GROUPS[i % len(GROUPS)])] += 1
        channel_layers.backends = {}
    ordered = sorted(samples)
    return {
        "layer": layer_name,
        "hosts": len(urls),
        "processes": processes,
        "median_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)], 3),
        # Per notify whose group lives on that server / per notify in all.
        "notifies_per_shard": spread,
        "scripts_per_notify": round(
            sum(a[0] - b[0] for a, b in zip(after, before, strict=True)) / n, 2
        ),
        # Each server also counts the INFO calls of server_counts (2 each).
        "commands_per_notify_by_shard": [
            round((a[1] - b[1] - 2) / max(1, share), 1)
            for a, b, share in zip(after, before, spread, strict=True)
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="calls per configuration")
    parser.add_argument("--hosts", default="1,3", help="host counts to compare")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    counts = [int(part) for part in args.hosts.split(",")]
    servers = [start_redis() for _ in range(max(counts))]
    try:
        configure()
        from rest_framework import serializers

        import realtime

        @realtime.event("bench.tick", direction="server")
        class Tick(serializers.Serializer):
            i = serializers.IntegerField()
            text = serializers.CharField()

        for layer_name in ("core", "pubsub"):
            for count in counts:
                urls = [f"redis://127.0.0.1:{port}/0" for _, port, _ in servers[:count]]
                for _, port, _ in servers:
                    subprocess.run(
                        ["redis-cli", "-p", str(port), "flushall"],
                        check=True,
                        capture_output=True,
                    )
                result = measure(layer_name, urls, args.n, args.processes)
                print(json.dumps(result))
    finally:
        for proc, _, workdir in servers:
            proc.terminate()
            proc.wait(10)
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
