"""notify() from sync code against the obvious async_to_sync(group_send), on Redis.

Starts its own redis-server on a free port, points a channels-redis layer at it, keeps
one subscriber in the group (so every call really delivers), and times N calls of each
path in the same run. ``--loop`` instead times whole loops of N ``notify()`` calls
with history (plain, and inside ``realtime.batch()`` when the package has it) and
checks that the subscriber got every event and history holds consecutive seqs. Usage::

    .venv/bin/python benchmarks/notify_sync.py [-n 2000] [--layer core|pubsub]
    .venv/bin/python benchmarks/notify_sync.py --loop [-n 1000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
GROUP = "bench.room"


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


def configure(url: str, layer: str, capacity: int) -> None:
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
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": LAYERS[layer],
                # Room for every message of the run: a full channel is skipped, which
                # would flatter both paths.
                "CONFIG": {"hosts": [url], "capacity": capacity + 100},
            }
        },
        USE_TZ=True,
    )
    django.setup()


def timed(n: int, call: Callable[[int], object]) -> list[float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def summary(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99, statistics.fmean(ordered)


class Subscriber:
    """One member of the group, read after the run so it costs the timed calls
    nothing; proves that every call of every path was delivered."""

    def __init__(self, layer: object, layer_name: str) -> None:
        import redis
        from asgiref.sync import async_to_sync

        self.layer, self.name = layer, layer_name
        url = layer.hosts[0]["address"] if layer_name == "core" else None
        url = url or layer._kwargs["hosts"][0]
        self.redis = redis.Redis.from_url(url)
        if layer_name == "core":
            channel = async_to_sync(layer.new_channel)()
            async_to_sync(layer.group_add)(GROUP, channel)
            self.key = layer.prefix + layer.non_local_name(channel)
        else:
            self.pubsub = self.redis.pubsub()
            self.pubsub.subscribe(f"asgi__group__{GROUP}")
            self.pubsub.get_message(timeout=5)  # the subscribe confirmation

    def count(self) -> int:
        if self.name == "core":
            last = self.redis.zrange(self.key, -1, -1)[0]
            count = self.redis.zcard(self.key)
        else:
            count, last = 0, None
            while (message := self.pubsub.get_message(timeout=1)) is not None:
                count, last = count + 1, message["data"]
        assert self.layer.deserialize(last)["type"] == "rt.event"
        return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-n", type=int, help="calls per path (default 2000), or per loop (1000)"
    )
    parser.add_argument("--layer", choices=sorted(LAYERS), default="core")
    parser.add_argument(
        "--loop", action="store_true", help="time whole loops of N calls instead"
    )
    parser.add_argument("--rounds", type=int, default=20, help="loops per path")
    args = parser.parse_args()
    n = args.n or (1000 if args.loop else 2000)
    warmup = max(5, min(200, n // 10))

    proc, port, workdir = start_redis()
    try:
        capacity = n * (2 * args.rounds + 2) if args.loop else 3 * (warmup + n)
        configure(f"redis://127.0.0.1:{port}/0", args.layer, capacity)
        if args.loop:
            return run_loops(n, args.rounds, args.layer)
        return run(n, warmup, args.layer)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def run(n: int, warmup: int, layer_name: str) -> int:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer
    from rest_framework import serializers

    import realtime

    @realtime.event("bench.tick", direction="server")
    class Tick(serializers.Serializer):
        i = serializers.IntegerField()
        text = serializers.CharField()

    layer = get_channel_layer()
    check = Subscriber(layer, layer_name)

    payload = {"text": "hello from a view"}

    def baseline(i: int) -> None:
        message = {"type": "rt.event", "group": GROUP, "event": "bench.tick"}
        message["text"] = f'{{"type":"bench.tick","data":{{"i":{i}}}}}'
        async_to_sync(layer.group_send)(GROUP, message)

    def fast(i: int) -> None:
        realtime.notify(GROUP, "bench.tick", {"i": i, **payload}, history=False)

    def fast_history(i: int) -> None:
        realtime.notify(GROUP, "bench.tick", {"i": i, **payload})

    paths = [
        ("async_to_sync(group_send)", baseline),
        ("notify(history=False)", fast),
        ("notify() with history", fast_history),
    ]
    # Interleaved in rounds so that load from elsewhere on the machine falls on
    # every path alike.
    samples: dict[str, list[float]] = {name: [] for name, _ in paths}
    for _name, call in paths:
        timed(warmup, call)
    done = 0
    while done < n:
        step = min(100, n - done)
        for name, call in paths:
            # The baseline leaves event loops and sockets behind; collect them here
            # rather than in the middle of the next path's calls.
            gc.collect()
            samples[name] += timed(step, call)
        done += step
    results = {name: summary(values) for name, values in samples.items()}

    total = 3 * (warmup + n)
    received = check.count()
    if received != total:
        sys.exit(f"the subscriber got {received} of {total} messages")

    print(f"notify() from sync code, {layer_name} layer, N={n} calls per path")
    print(f"{'path':<28}{'median ms':>11}{'p99 ms':>10}{'mean ms':>10}")
    for name, (median, p99, mean) in results.items():
        print(f"{name:<28}{median:>11.3f}{p99:>10.3f}{mean:>10.3f}")
    base = results["async_to_sync(group_send)"][0]
    for name in ("notify(history=False)", "notify() with history"):
        print(
            f"speed-up of {name} over baseline (median): {base / results[name][0]:.1f}x"
        )
    return 0


def run_loops(n: int, rounds: int, layer_name: str) -> int:
    """Time loops of ``n`` notify() calls with history, plain and batched."""
    from channels.layers import get_channel_layer
    from rest_framework import serializers

    import realtime

    @realtime.event("bench.tick", direction="server")
    class Tick(serializers.Serializer):
        i = serializers.IntegerField()
        text = serializers.CharField()

    check = Subscriber(get_channel_layer(), layer_name)
    payload = {"text": "hello from a view"}

    def plain() -> None:
        for i in range(n):
            realtime.notify(GROUP, "bench.tick", {"i": i, **payload}, history=True)

    def batched() -> None:
        with realtime.batch():
            for i in range(n):
                realtime.notify(GROUP, "bench.tick", {"i": i, **payload}, history=True)

    paths: list[tuple[str, Callable[[], None]]] = [("plain loop", plain)]
    if hasattr(realtime, "batch"):
        paths.append(("with realtime.batch()", batched))
    plain()  # warm-up: connections, serializer, script cache
    samples: dict[str, list[float]] = {name: [] for name, _ in paths}
    for _ in range(rounds):
        for name, call in paths:
            gc.collect()
            start = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - start) * 1000)

    total = n * (1 + rounds * len(paths))
    received = check.count()
    if received != total:
        sys.exit(f"the subscriber got {received} of {total} messages")
    # History holds the last events with consecutive seqs, the last one = total.
    log = check.redis.lrange(f"rt:log:{{{GROUP}}}", -n, -1)
    seqs = [int(re.search(rb',"seq":(\d+)', item).group(1)) for item in log]
    if seqs != list(range(total - n + 1, total + 1)):
        sys.exit(f"history does not end with seqs {total - n + 1}..{total}")
    print(
        f"{n} notify() calls with history in a loop, {layer_name} layer, "
        f"{rounds} loops per path"
    )
    print(f"{'path':<26}{'median ms':>11}{'min ms':>10}{'max ms':>10}")
    for name, values in samples.items():
        print(
            f"{name:<26}{statistics.median(values):>11.1f}"
            f"{min(values):>10.1f}{max(values):>10.1f}"
        )
    return 0


if __name__ == "__main__":
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    sys.exit(main())
