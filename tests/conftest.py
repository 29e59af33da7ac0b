"""Fixtures: clean hubs and layers per test, a real redis-server, real daphne processes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from channels.layers import channel_layers

from realtime import backends
from realtime.settings import realtime_settings

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def start_server(
    app: str,
    port: int,
    *,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    server: str = "daphne",
    args: Sequence[str] = (),
) -> subprocess.Popen:
    """Start daphne (or uvicorn) serving ``app`` on 127.0.0.1:``port``; return once
    it listens. ``args`` are extra command-line options. The caller stops it."""
    if server == "uvicorn":
        cmd = [
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *args,
            app,
        ]
    else:
        cmd = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), *args, app]
    output = log.open("w") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, *cmd],
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port, proc)
    return proc


@pytest.fixture(autouse=True)
async def _fresh_realtime_state():
    """Each test gets its own hub, channel layer and memory backend."""
    from realtime.hub import shutdown_hub

    channel_layers.backends = {}
    backends.reset()
    realtime_settings.reload()
    yield
    await shutdown_hub()
    channel_layers.backends = {}
    backends.reset()


class RedisServer:
    """A redis-server of the test's own on a free port (so tests may stop it)."""

    def __init__(self, args: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.args = list(args)  # extra redis-server options (--requirepass ...)
        self.dir = tempfile.mkdtemp(prefix="rt-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed (apt-get install redis-server)"
            )
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def flush(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url)
        client.flushall()
        client.close()


@pytest.fixture
def own_redis():
    """A redis-server of this test alone: it may stop, restart or flush it."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def loop():
    """A private event loop for sync tests that drive WebSocket clients and call the
    sync ``notify()`` like a view would."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def redis_url(redis_server):
    if redis_server.proc is None:
        redis_server.start()
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def redis_layer(redis_url, settings):
    """Switch this test's process to channels-redis and the Redis backend."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url]},
        }
    }
    channel_layers.backends = {}
    backends.reset()
    return redis_url


class Daphne:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="session")
def e2e_db(tmp_path_factory):
    """A migrated SQLite file shared by the test process and its daphne processes."""
    path = tmp_path_factory.mktemp("e2e") / "db.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.e2e_settings",
        "RT_TEST_DB": str(path),
    }
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return path


def django_shell(e2e_db: Path, code: str, *, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in ``manage.py shell`` on the e2e database; return its last line."""
    full_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.e2e_settings",
        "RT_TEST_DB": str(e2e_db),
        **(env or {}),
    }
    full_env.pop("PYTEST_CURRENT_TEST", None)
    done = subprocess.run(
        [sys.executable, "-m", "django", "shell", "-c", code],
        cwd=ROOT,
        env=full_env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def e2e_users(e2e_db):
    """Users in the e2e database: name -> {"token", "pk"}."""
    code = (
        "import json\n"
        "from django.contrib.auth.models import User\n"
        "from rest_framework.authtoken.models import Token\n"
        "out = {}\n"
        "for name, staff, active in [('alice', True, True), ('bob', False, True),"
        " ('mallory', False, True), ('ghost', False, False)]:\n"
        "    u, _ = User.objects.get_or_create(username=name)\n"
        "    u.is_staff = staff; u.is_active = active; u.set_password(name + '-pw'); u.save()\n"
        "    t, _ = Token.objects.get_or_create(user=u)\n"
        "    out[name] = {'token': t.key, 'pk': u.pk}\n"
        "print(json.dumps(out))\n"
    )
    return json.loads(django_shell(e2e_db, code))


class DaphneFactory:
    """Starts real daphne (or uvicorn) processes on free ports; stop_all() ends them."""

    def __init__(self, e2e_db: Path, log_dir: Path) -> None:
        self.e2e_db, self.log_dir = e2e_db, log_dir
        self.started: list[Daphne] = []

    def __call__(
        self,
        *,
        redis_url: str | None = None,
        layer: str | None = None,
        server: str = "daphne",
        port: int | None = None,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
        **realtime_settings,
    ) -> Daphne:
        port = port or free_port()
        extra_env = env or {}
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.e2e_settings",
            "RT_TEST_DB": str(self.e2e_db),
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("PYTEST_CURRENT_TEST", None)
        env.update(extra_env)
        if redis_url:
            env["REDIS_URL"] = redis_url
        if layer:
            env["RT_LAYER"] = layer
        for key, value in realtime_settings.items():
            # Every value travels as JSON (tests/e2e_settings.py reads it back), so
            # its type survives: REALTIME's types are checked.
            env[f"RT_SET_{key}"] = json.dumps(value)
        log = self.log_dir / f"{server}-{port}-{len(self.started)}.log"
        proc = start_server(
            "tests.asgi:application", port, env=env, log=log, server=server, args=args
        )
        instance = Daphne(proc, port, log)
        self.started.append(instance)
        return instance

    def stop_all(self) -> None:
        for instance in self.started:
            instance.stop()


@pytest.fixture
def daphne(e2e_db, tmp_path):
    """Factory: start real daphne processes on free ports; all stopped at teardown."""
    factory = DaphneFactory(e2e_db, tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def daphne_module(e2e_db, tmp_path_factory):
    """Like ``daphne``, but the processes live for the whole test module."""
    factory = DaphneFactory(e2e_db, tmp_path_factory.mktemp("daphne"))
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def module_redis(redis_server):
    """The session's redis-server, flushed once for a module of e2e tests."""
    if redis_server.proc is None:
        redis_server.start()
    redis_server.flush()
    return redis_server.url


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Pages served "from" another origin (fulfilled by Playwright) open WebSockets to
    # 127.0.0.1: Chromium's Local Network Access checks would block that
    # (net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS).
    "--disable-features=LocalNetworkAccessChecks",
]


@pytest.fixture
async def browser():
    """Headless Debian Chromium through Playwright's async API (pytest-asyncio runs
    every test in an event loop, and the sync API refuses to run inside one)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        await browser.close()
