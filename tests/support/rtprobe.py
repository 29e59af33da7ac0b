"""Probes for the reliability suite: process memory and a well-behaved client.

``Heartbeat`` runs a listener and a publisher on a server in a thread of their own
(its own event loop), so what the test does meanwhile (fuzzing, flooding) cannot
stall them: the latency they measure is the server's.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import threading
import time
from pathlib import Path

from tests.support.wsclient import Client

_groups = itertools.count(1)


def rss_kib(pid: int) -> int:
    """Resident set size of process ``pid`` in KiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


class Heartbeat:
    """A listener subscribed to a public group and a publisher sending to it.

    ``stop()`` returns the figures: events sent and received, missing ones, and
    latency percentiles (publish request to listener receipt) in seconds.
    """

    def __init__(self, url: str, *, interval: float = 0.1, path: str = "/ws/") -> None:
        self.url, self.interval, self.path = url, interval, path
        self.group = f"public.heartbeat-{next(_groups)}"
        self.sent: dict[int, float] = {}
        self.latencies: dict[int, float] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Heartbeat:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self.stop()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(20):
            raise TimeoutError(f"heartbeat clients did not connect: {self.errors}")
        if self.errors:
            raise RuntimeError(self.errors[0])

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(30)
        lat = sorted(self.latencies.values())
        return {
            "sent": len(self.sent),
            "received": len(lat),
            "missing": sorted(set(self.sent) - set(self.latencies)),
            "errors": self.errors,
            "p50": statistics.median(lat) if lat else None,
            "p99": lat[int(len(lat) * 0.99) - 1] if lat else None,
            "max": lat[-1] if lat else None,
        }

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as error:  # reported by stop()
            self.errors.append(repr(error))
            self._ready.set()

    async def _main(self) -> None:
        listener = await Client.open(f"{self.url}{self.path}")
        publisher = await Client.open(f"{self.url}{self.path}")
        ack = await listener.request("rt.subscribe", {"group": self.group})
        assert ack["type"] == "rt.ack", ack
        reader = asyncio.create_task(self._read(listener))
        self._ready.set()
        n = 0
        while not self._stop.is_set():
            n += 1
            self.sent[n] = time.monotonic()
            reply = await publisher.request(
                "test.say", {"group": self.group, "text": "beat", "n": n}, timeout=10
            )
            if reply["type"] != "rt.ack":
                self.errors.append(f"publish {n}: {reply}")
            await asyncio.sleep(self.interval)
        # Let the last event arrive before stopping the reader.
        deadline = time.monotonic() + 5
        while n not in self.latencies and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await listener.close()
        await publisher.close()

    async def _read(self, listener: Client) -> None:
        while True:
            frame = await listener.recv(timeout=3600)
            data = frame.get("data") or {}
            if frame.get("type") == "test.say" and frame.get("group") == self.group:
                self.latencies[data["n"]] = time.monotonic() - self.sent[data["n"]]
            elif frame.get("type") == "rt.error":
                self.errors.append(f"listener got {frame}")
