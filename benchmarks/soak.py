"""Soak: N clients over 2 daphne processes, steady publishing, nothing lost.

Starts its own redis-server and two daphne processes (tests/support/ helpers),
spreads clients over both, publishes at a steady rate into a few groups from both
processes, then checks: every client got every event of its group exactly once and
in order, RSS of each daphne stayed flat, and after everyone left no group
membership, presence entry or Redis key remains except history (which expires by
HISTORY_TTL). Non-CI target (tests/e2e/test_soak.py runs a 20 s variant)::

    .venv/bin/python benchmarks/soak.py [--seconds 120] [--clients 200] [--rate 50]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


async def soak(
    urls: list[str], pids: list[int], *, seconds: float, clients: int, rate: float
) -> dict:
    """Run the soak against running servers; return its figures."""
    from tests.support.rtprobe import rss_kib
    from tests.support.wsclient import Client

    groups = [f"public.soak-{i}" for i in range(max(1, clients // 10))]
    conns, received = [], []
    for i in range(clients):
        client = await Client.open(f"{urls[i % len(urls)]}/ws/")
        ack = await client.request("rt.subscribe", {"group": groups[i % len(groups)]})
        assert ack["type"] == "rt.ack", ack
        conns.append((client, groups[i % len(groups)], ack["data"]["seq"]))
        received.append([])
    senders = [await Client.open(f"{url}/ws/") for url in urls]
    last_n = {group: 0 for group in groups}
    stop = asyncio.Event()

    async def read(index: int) -> None:
        client, group, _ = conns[index]
        while not stop.is_set() or len(received[index]) < last_n[group]:
            try:
                frame = await client.next_event(timeout=10)
            except TimeoutError:
                break
            if frame.get("group") == group and frame["type"] == "test.say":
                received[index].append((frame["seq"], frame["data"]["n"]))

    readers = [asyncio.create_task(read(i)) for i in range(clients)]
    rss = {pid: [rss_kib(pid)] for pid in pids}
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < seconds:
        group = random.choice(groups)
        last_n[group] += 1
        sender = senders[sent % len(senders)]
        reply = await sender.request(
            "test.say", {"group": group, "text": "soak", "n": last_n[group]}
        )
        assert reply["type"] == "rt.ack", reply
        sent += 1
        if sent % max(1, int(rate * 5)) == 0:
            for pid in pids:
                rss[pid].append(rss_kib(pid))
        await asyncio.sleep(1 / rate)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*readers), 60)
    lost = duplicated = 0
    for index, (_client, group, _seq) in enumerate(conns):
        ns = [n for _seq, n in received[index]]
        duplicated += len(ns) - len(set(ns))
        lost += last_n[group] - len(set(ns))
        seqs = [seq for seq, _n in received[index]]
        assert seqs == sorted(seqs), "out of order"
    for client, _group, _seq in conns:
        await client.close()
    for sender in senders:
        await sender.close()
    return {
        "clients": clients,
        "processes": len(urls),
        "events_published": sent,
        "events_delivered": sum(len(r) for r in received),
        "lost": lost,
        "duplicated": duplicated,
        "rss_kib": {
            pid: (values[0], values[len(values) // 2], values[-1])
            for pid, values in rss.items()
        },
    }


def leftover_keys(redis_url: str) -> list[str]:
    """Redis keys that outlive everyone leaving, except history (TTL) and claims."""
    import redis

    store = redis.Redis.from_url(redis_url)
    left = []
    for key in store.scan_iter():
        name = key.decode()
        if name.startswith(("rt:log:", "rt:meta:", "rt:claim:")):
            assert store.ttl(key) > 0, f"{name} has no TTL"
            continue
        if name.startswith("rt:proc:") or name == "rt:pgroups":
            continue  # process heartbeats expire; the presence index is swept
        if name == "rt:reign":
            continue  # one small marker per server: whose writes history holds
        if ":group:realtime-probe." in name:
            continue  # a live process's delivery probe, left when it stops
        if name.startswith("rt:pc:") and store.zcard(key) == 0:
            continue
        left.append(name)
    return left


async def wait_clean(redis_url: str, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        left = leftover_keys(redis_url)
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50)
    args = parser.parse_args()
    from tests.support.redis_server import RedisServer
    from tests.support.servers import DaphneFactory

    redis_server = RedisServer()
    redis_server.start()
    tmp = Path(tempfile.mkdtemp(prefix="rt-soak-"))
    import subprocess

    db = tmp / "db.sqlite3"
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v", "0"],
        cwd=ROOT,
        env={
            **__import__("os").environ,
            "DJANGO_SETTINGS_MODULE": "tests.e2e_settings",
            "RT_TEST_DB": str(db),
        },
        check=True,
    )
    factory = DaphneFactory(db, tmp)
    try:
        servers = [
            factory(redis_url=redis_server.url, RATE=1000.0, BURST=1000)
            for _ in range(2)
        ]
        figures = asyncio.run(
            soak(
                [s.url for s in servers],
                [s.proc.pid for s in servers],
                seconds=args.seconds,
                clients=args.clients,
                rate=args.rate,
            )
        )
        figures["leftover_keys"] = asyncio.run(wait_clean(redis_server.url))
        for key, value in figures.items():
            print(f"{key:>18}: {value}")
    finally:
        factory.stop_all()
        redis_server.stop()


if __name__ == "__main__":
    main()
