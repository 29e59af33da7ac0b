"""The JavaScript client (realtime/static/realtime/realtime.js) under Node.

Unit tests run under ``node --test`` against a fake socket; the e2e scripts in
tests/js/ drive the client against real daphne processes (and a real redis-server),
asking this side to kill, freeze and restart servers through a line protocol.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support.npm import tsc_strict
from tests.support.processes import ROOT
from tests.support.servers import django_shell

JS = ROOT / "tests" / "js"
NODE = shutil.which("node")


def node_command(*args: str) -> list[str]:
    if NODE is None:
        raise RuntimeError("node is not installed (apt-get install nodejs)")
    version = subprocess.run(
        [NODE, "--version"], capture_output=True, text=True, check=True
    ).stdout
    major = int(version.strip().lstrip("v").split(".")[0])
    # Node 20 and 21 have WebSocket behind a flag; 22 has it on by default; older
    # versions get tests/js/mini_ws.mjs (see harness.mjs).
    flags = ["--experimental-websocket"] if major in (20, 21) else []
    return [NODE, *flags, *args]


class NodeScript:
    """Runs one tests/js script; answers its ``step`` requests with ``handlers``."""

    def __init__(self, script: str, config: dict, *, logs: list[Path] = ()) -> None:
        self.script, self.logs = script, list(logs)
        self.proc = subprocess.Popen(
            node_command(str(JS / script)),
            cwd=ROOT,
            env={**os.environ, "RT_TEST": json.dumps(config)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout, True)).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, False)).start()

    def _read(self, stream, is_stdout: bool) -> None:
        for line in stream:
            (self.stdout if is_stdout else self.stderr).append(line)
            if is_stdout:
                self.lines.put(line)
        if is_stdout:
            self.lines.put(None)

    def run(self, handlers: dict | None = None, *, timeout: float = 120) -> None:
        handlers = handlers or {}
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                try:
                    line = self.lines.get(timeout=max(remaining, 0.01))
                except queue.Empty:
                    self.fail(f"no progress within {timeout} s")
                if line is None:
                    break
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if "step" in message:
                    reply = handlers[message["step"]](message) or {}
                    self.proc.stdin.write(json.dumps(reply) + "\n")
                    self.proc.stdin.flush()
            code = self.proc.wait(max(deadline - time.monotonic(), 1))
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        if code != 0:
            self.fail(f"exited with {code}")

    def fail(self, why: str) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        server_logs = "".join(
            f"\n--- {log.name} ---\n{log.read_text()[-3000:]}"
            for log in self.logs
            if log.exists()
        )
        pytest.fail(
            f"{self.script} {why}\n--- stderr ---\n{''.join(self.stderr)}"
            f"\n--- stdout ---\n{''.join(self.stdout)[-3000:]}{server_logs}",
            pytrace=False,
        )


def users_config(e2e_users: dict) -> dict:
    return {name: {"token": user["token"]} for name, user in e2e_users.items()}


def server_config(server) -> dict:
    return {"url": server.url, "http": f"http://127.0.0.1:{server.port}"}


def test_unit():
    """Backoff math, state machine, queue, ordering and recovery against a fake socket."""
    done = subprocess.run(
        node_command("--test", str(JS / "unit.test.mjs")),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]


@pytest.mark.e2e
def test_connect_request_subscribe(daphne, e2e_users):
    server = daphne()
    config = {**server_config(server), "users": users_config(e2e_users)}
    NodeScript("e2e_basic.mjs", config, logs=[server.log]).run()


@pytest.mark.e2e
def test_reconnect_recover_and_flush_after_restart(daphne, redis_url):
    """Kill server A; B keeps publishing; A restarts on its port; nothing is lost."""
    a = daphne(redis_url=redis_url)
    b = daphne(redis_url=redis_url)
    logs = [a.log, b.log]

    def restart(_):
        logs.append(daphne(redis_url=redis_url, port=a.port).log)

    NodeScript(
        "e2e_restart.mjs",
        {"a": server_config(a), "b": server_config(b)},
        logs=logs,
    ).run({"kill-a": lambda _: a.kill(), "restart-a": restart})


def append_to_history_only(e2e_db: Path, redis_url: str, group: str, n: int) -> int:
    """Number and store an event the way notify() does, but never publish it live."""
    code = (
        "import asyncio\n"
        "from realtime.backends import get_backend\n"
        "async def main():\n"
        f'    prefix = \'{{"type":"test.say","v":1,"group":"{group}","seq":\'\n'
        f'    suffix = \',"data":{{"group":"{group}","text":"lost","n":{n}}}}}\'\n'
        f"    seq, _ = await get_backend().append('{group}', prefix, suffix)\n"
        "    print(seq)\n"
        "asyncio.run(main())\n"
    )
    return int(django_shell(e2e_db, code, env={"REDIS_URL": redis_url}))


@pytest.mark.e2e
def test_live_gap_is_filled_from_history(daphne, redis_url, e2e_db):
    server = daphne(redis_url=redis_url)
    NodeScript("e2e_gap.mjs", server_config(server), logs=[server.log]).run(
        {
            "lose-one": lambda step: {
                "seq": append_to_history_only(e2e_db, redis_url, step["group"], 2)
            }
        }
    )


@pytest.mark.e2e
def test_silent_server_is_detected_by_heartbeat(daphne):
    server = daphne(HEARTBEAT_INTERVAL=1, HEARTBEAT_TIMEOUT=3)
    frozen = []

    def freeze(_):
        server.proc.send_signal(signal.SIGSTOP)
        frozen.append(True)

    try:
        NodeScript("e2e_heartbeat.mjs", server_config(server), logs=[server.log]).run(
            {
                "freeze": freeze,
                "thaw": lambda _: server.proc.send_signal(signal.SIGCONT),
            }
        )
    finally:
        if frozen:
            server.proc.send_signal(signal.SIGCONT)


@pytest.mark.e2e
def test_no_retry_after_4401_and_4403(daphne, e2e_users):
    server = daphne()
    config = {**server_config(server), "users": users_config(e2e_users)}
    NodeScript("e2e_auth.mjs", config, logs=[server.log]).run()


def test_types_compile(npm_tools):
    """realtime.d.ts type-checks a typical use under tsc --strict."""
    done = tsc_strict(npm_tools, str(JS / "types_check.ts"), ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
