"""Shared documents under load: N editors on one document over K server processes.

    .venv/bin/python benchmarks/collab.py [--editors 50] [--processes 2]

Starts its own redis-server on a free port, migrates a fresh SQLite file (WAL) the
processes share, starts K daphne processes (``benchmarks/collab_app``), and connects
N editors (WebSocket clients in this process, each with a pycrdt document), spread
round-robin over the processes, all on one document. Everything on 127.0.0.1,
bounded in time. Three phases:

- steady: every editor types ``--rate`` updates a second (one character each, what a
  provider sends while someone types) for ``--duration`` seconds; latency is from an
  editor's send to each other editor's receipt of the relayed update (same clock);
- saturation: every editor sends its next update as soon as the previous one is
  acknowledged (stored), for ``--duration`` seconds: updates stored per second for
  the document, and relayed deliveries per second;
- convergence: every editor's text equals the stored text at the end.

Memory per open document is measured in a separate process: RSS before and after
opening ``--documents`` documents of a given size (pycrdt allocates outside Python's
heap, so RSS, not tracemalloc).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.fanout import free_port, start_redis, stop, wait_for_port  # noqa: E402


def env_for(redis_url: str, db: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["DJANGO_SETTINGS_MODULE"] = "benchmarks.collab_app.settings"
    env["BENCH_REDIS_URL"], env["BENCH_DB"] = redis_url, str(db)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), env.get("PYTHONPATH")])
    )
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Editor:
    """One WebSocket client editing the shared document with a pycrdt Doc."""

    def __init__(
        self, index: int, url: str, group: str, sent: dict[str, float]
    ) -> None:
        import pycrdt

        self.index, self.url, self.group, self.sent = index, url, group, sent
        self.doc = pycrdt.Doc()
        self.text = self.doc.get("content", type=pycrdt.Text)
        self.latencies: list[float] = []
        self.received = 0
        self.waiting: dict[str, asyncio.Future] = {}
        self.ids = 0

    async def connect(self) -> None:
        import websockets

        self.ws = await websockets.connect(self.url, max_size=2**22, compression=None)
        welcome = json.loads(await self.ws.recv())
        assert welcome["type"] == "rt.welcome", welcome
        self.reader = asyncio.ensure_future(self._read())
        await self.request("rt.subscribe", {"group": self.group})
        await self.sync()

    async def _read(self) -> None:
        from realtime.collab.ysync import decode_sync

        async for raw in self.ws:
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind in ("rt.ack", "rt.error") and frame.get("id") in self.waiting:
                self.waiting.pop(frame["id"]).set_result(frame)
            elif kind == "doc.sync":
                m = frame["data"]["m"]
                now = time.perf_counter()
                started = self.sent.get(m)
                if started is not None:
                    self.latencies.append(now - started)
                self.received += 1
                self.doc.apply_update(decode_sync(base64.b64decode(m))[1])
            elif kind == "rt.ping":
                pong = {"type": "rt.pong", "data": frame.get("data")}
                if "id" in frame:
                    pong["id"] = frame["id"]
                await self.ws.send(json.dumps(pong))

    async def request(self, type_: str, data: dict) -> dict:
        self.ids += 1
        frame_id = str(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.waiting[frame_id] = future
        await self.ws.send(json.dumps({"type": type_, "id": frame_id, "data": data}))
        reply = await asyncio.wait_for(future, 30)
        if reply["type"] == "rt.error":
            raise RuntimeError(f"editor {self.index}: {reply['data']}")
        return reply["data"]

    async def sync(self) -> None:
        from realtime.collab.ysync import STEP1, STEP2, decode_sync, encode_sync

        m = base64.b64encode(encode_sync(STEP1, self.doc.get_state())).decode()
        ack = await self.request("doc.sync", {"group": self.group, "m": m})
        for part in ack["m"]:
            kind, payload = decode_sync(base64.b64decode(part))
            if kind == STEP2:
                self.doc.apply_update(payload)
            elif kind == STEP1:
                missing = self.doc.get_update(payload)
                if missing != b"\x00\x00":
                    reply = base64.b64encode(encode_sync(STEP2, missing)).decode()
                    await self.request("doc.sync", {"group": self.group, "m": reply})

    def type_one(self) -> str:
        """Type one character at a random place; return the update's ``m``."""
        from realtime.collab.ysync import UPDATE, encode_sync

        before = self.doc.get_state()
        position = (self.index * 7919 + len(self.text)) % (len(self.text) + 1)
        self.text.insert(position, chr(97 + self.index % 26))
        update = self.doc.get_update(before)
        return base64.b64encode(encode_sync(UPDATE, update)).decode()

    async def send_update(self, *, wait: bool) -> None:
        m = self.type_one()
        self.sent[m] = time.perf_counter()
        if wait:
            await self.request("doc.sync", {"group": self.group, "m": m})
        else:
            await self.ws.send(
                json.dumps({"type": "doc.sync", "data": {"group": self.group, "m": m}})
            )

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


async def steady(editors: list[Editor], rate: float, duration: float) -> dict:
    for editor in editors:
        editor.latencies.clear()

    async def typist(editor: Editor) -> int:
        count = 0
        start = time.perf_counter()
        # Spread the editors' sends over the interval.
        await asyncio.sleep(editor.index / len(editors) / rate)
        while time.perf_counter() - start < duration:
            await editor.send_update(wait=False)
            count += 1
            await asyncio.sleep(1 / rate)
        return count

    sent = sum(await asyncio.gather(*(typist(e) for e in editors)))
    expected = sent * (len(editors) - 1)
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        if sum(len(e.latencies) for e in editors) >= expected:
            break
        await asyncio.sleep(0.1)
    latencies = [x for e in editors for x in e.latencies]
    return {
        "updates": sent,
        "updates_per_s": sent / duration,
        "deliveries": len(latencies),
        "expected_deliveries": expected,
        "latency_ms_p50": percentile(latencies, 0.50) * 1000,
        "latency_ms_p99": percentile(latencies, 0.99) * 1000,
        "latency_ms_max": max(latencies) * 1000 if latencies else float("nan"),
    }


async def saturation(editors: list[Editor], duration: float) -> dict:
    received_before = sum(e.received for e in editors)

    async def writer(editor: Editor) -> int:
        count = 0
        start = time.perf_counter()
        while time.perf_counter() - start < duration:
            await editor.send_update(wait=True)
            count += 1
        return count

    start = time.perf_counter()
    stored = sum(await asyncio.gather(*(writer(e) for e in editors)))
    elapsed = time.perf_counter() - start
    expected = stored * (len(editors) - 1)
    deadline = time.perf_counter() + 60
    while sum(e.received for e in editors) - received_before < expected:
        if time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.1)
    drained = time.perf_counter() - start
    delivered = sum(e.received for e in editors) - received_before
    return {
        "stored_updates_per_s": stored / elapsed,
        "deliveries_per_s": delivered / drained,
        "delivered": delivered,
        "expected_deliveries": expected,
    }


def memory_main(args: argparse.Namespace) -> None:
    """In a process of its own: RSS per open document of ``--chars`` characters."""
    import pycrdt

    def rss_kb() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

    # One document's stored state, written the way people type: words of 3 to 10
    # characters, each where the writer's cursor is, the cursor jumping elsewhere
    # every few words (every jump starts a new Yjs item).
    source = pycrdt.Doc()
    text = source.get("content", type=pycrdt.Text)
    cursor = i = 0
    while len(text) < args.chars:
        word = "abcdefghij"[: 3 + i % 8] + " "
        if i % 5 == 0:
            cursor = (i * 7919) % (len(text) + 1)
        with source.transaction():
            for ch in word:  # one transaction per keystroke in an editor
                text.insert(cursor, ch)
                cursor += 1
        i += 1
    state = source.get_update()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.collab_app.settings")
    import django

    django.setup()
    from realtime.collab.documents import OpenDocument

    held = []
    before = rss_kb()
    for i in range(args.documents):
        document = OpenDocument(f"doc.m{i}")
        document.doc.apply_update(state)
        held.append(document)
    after = rss_kb()
    print(
        json.dumps(
            {
                "chars": args.chars,
                "state_bytes": len(state),
                "documents": args.documents,
                "rss_kb_per_document": (after - before) / args.documents,
            }
        )
    )


def measure_memory(documents: int, chars: int) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--memory",
            "--documents",
            str(documents),
            "--chars",
            str(chars),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env=env_for("redis://127.0.0.1", Path(":memory:")),
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


async def run(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="rt-collab-bench-"))
    redis, redis_url = start_redis(work)
    db = work / "collab.sqlite3"
    env = env_for(redis_url, db)
    servers: list[subprocess.Popen] = []
    try:
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=120,
        )
        ports = []
        for i in range(args.processes):
            port = free_port()
            log = (work / f"daphne-{i}.log").open("w")
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "daphne", "-b", "127.0.0.1"),
                    *("-p", str(port), "benchmarks.collab_app.asgi:application"),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            servers.append(proc)
            wait_for_port(port, proc)
            ports.append(port)
        sent: dict[str, float] = {}
        editors = [
            Editor(i, f"ws://127.0.0.1:{ports[i % len(ports)]}/ws/", "doc.bench", sent)
            for i in range(args.editors)
        ]
        for editor in editors:
            await editor.connect()
        results = {
            "editors": args.editors,
            "processes": args.processes,
            "steady": await steady(editors, args.rate, args.duration),
            "saturation": await saturation(editors, args.duration),
        }
        texts = {str(editor.text) for editor in editors}
        stored = subprocess.run(
            [
                sys.executable,
                "-c",
                "import django; django.setup()\n"
                "from realtime.collab import store\n"
                "print(store.text('doc.bench'))",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.rstrip("\n")
        results["converged"] = len(texts) == 1 and texts == {stored}
        results["characters"] = len(stored)
        for editor in editors:
            await editor.close()
        return results
    finally:
        for proc in servers:
            stop(proc)
        stop(redis)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--editors", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rate", type=float, default=2.0, help="updates/s per editor")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--chars", type=int, default=2000)
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.memory:
        memory_main(args)
        return
    results = asyncio.run(run(args))
    results["memory"] = [
        measure_memory(args.documents, chars) for chars in (args.chars, 20 * args.chars)
    ]
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
