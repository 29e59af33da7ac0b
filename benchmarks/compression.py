"""Bytes on the wire for typical events, with and without permessage-deflate.

Starts the test project under daphne and under uvicorn (websockets implementation,
per-message deflate on by default) on free ports, puts a byte-counting TCP relay in
front of each, subscribes one client to a group and has it broadcast ``-n`` chat-like
events (each comes back as an ack plus the group event). Prints the bytes the server
sent, per event, for a client that offers compression and one that does not.
``--shared`` adds a run per server with REALTIME["COMPRESSION"] (each event compressed
once per process, without context; uvicorn with ``--ws websockets-sansio``).

    .venv/bin/python benchmarks/compression.py -n 500
    .venv/bin/python benchmarks/compression.py -n 500 --shared --min-bytes 0
    .venv/bin/python benchmarks/compression.py -n 50 --json   # used by the tests
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
# Message text: words drawn at random from the README's vocabulary, so the text
# itself never repeats (real chat compresses better; the envelope compresses anyway).
WORDS = sorted({w for w in (ROOT / "README.md").read_text().split() if w.isalpha()})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    kind: str, port: int, db: str, shared: bool = False, min_bytes: int = 256
) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.e2e_settings",
        "RT_TEST_DB": db,
        # A benchmark floods one connection: lift the per-connection rate limit.
        "RT_SET_RATE": "100000.0",
        "RT_SET_BURST": "100000",
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    if shared:
        env["RT_SET_COMPRESSION"] = "true"
        env["RT_SET_COMPRESSION_MIN_BYTES"] = str(min_bytes)
    if kind == "uvicorn":
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ws",
            "websockets-sansio" if shared else "websockets",
            "--log-level",
            "warning",
            "tests.asgi:application",
        ]
    else:
        cmd = [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "tests.asgi:application",
        ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise TimeoutError(f"{kind} did not start on port {port}")


class Relay:
    """A TCP relay that counts the bytes flowing from the server to the client."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.down = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )

        async def pipe(src, dst, count: bool) -> None:
            try:
                while data := await src.read(65536):
                    if count:
                        self.down += len(data)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(
            pipe(reader, up_writer, False), pipe(up_reader, writer, True)
        )

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


def payload(rng: random.Random, n: int) -> dict:
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 30)))
    return {"group": "public.bench", "text": text, "n": n}


async def measure(port: int, events: int, *, compress: bool) -> dict:
    relay = Relay(port)
    relay_port = await relay.start()
    rng = random.Random(42)
    async with connect(
        f"ws://127.0.0.1:{relay_port}/ws/",
        compression="deflate" if compress else None,
        ping_interval=None,
        max_size=None,
    ) as ws:
        extensions = [type(e).__name__ for e in ws.protocol.extensions]
        await ws.recv()  # rt.welcome
        await ws.send(
            '{"type":"rt.subscribe","id":"s","data":{"group":"public.bench"}}'
        )
        await ws.recv()
        start = relay.down
        payload_bytes = 0
        for n in range(events):
            data = payload(rng, n)
            payload_bytes += len(orjson.dumps(data))
            await ws.send(
                orjson.dumps({"type": "test.say", "id": f"m{n}", "data": data}).decode()
            )
        got = 0
        while got < events:  # read the group events (acks and pings come too)
            frame = orjson.loads(await ws.recv())
            if frame.get("type") == "rt.ping":  # a pong echoes the ping's nonce
                pong = {"type": "rt.pong", "data": frame.get("data") or {}}
                await ws.send(orjson.dumps(pong).decode())
            elif frame.get("type") == "test.say":
                got += 1
        await asyncio.sleep(0.2)
        wire = relay.down - start
    await relay.stop()
    return {
        "extensions": extensions,
        "events": events,
        "payload_bytes_per_event": round(payload_bytes / events, 1),
        "wire_bytes_per_event": round(wire / events, 1),
        "wire_bytes": wire,
    }


async def run(events: int, shared: bool = False, min_bytes: int = 256) -> dict:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "db.sqlite3")
        runs = [(kind, False) for kind in ("daphne", "uvicorn")]
        if shared:
            runs += [(kind, True) for kind in ("daphne", "uvicorn")]
        for kind, compressing in runs:
            port = free_port()
            proc = start_server(kind, port, db, compressing, min_bytes)
            try:
                for compress in (False, True) if not compressing else (True,):
                    mode = (
                        "shared" if compressing else "deflate" if compress else "plain"
                    )
                    results[f"{kind}-{mode}"] = await measure(
                        port, events, compress=compress
                    )
            finally:
                proc.terminate()
                proc.wait(10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="events per run")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--shared", action="store_true", help="also with REALTIME['COMPRESSION']"
    )
    parser.add_argument(
        "--min-bytes", type=int, default=256, help="COMPRESSION_MIN_BYTES (--shared)"
    )
    args = parser.parse_args()
    results = asyncio.run(run(args.n, args.shared, args.min_bytes))
    if args.json:
        print(json.dumps(results))
        return
    print(
        "| server | client offers deflate | negotiated | payload B/event | wire B/event |"
    )
    print("| --- | --- | --- | --- | --- |")
    for key, r in results.items():
        kind, mode = key.split("-")
        print(
            f"| {kind}{' (COMPRESSION)' if mode == 'shared' else ''} | "
            f"{'no' if mode == 'plain' else 'yes'} | "
            f"{', '.join(r['extensions']) or 'none'} | {r['payload_bytes_per_event']} | "
            f"{r['wire_bytes_per_event']} |"
        )


if __name__ == "__main__":
    main()
