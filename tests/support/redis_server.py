"""redis-server processes of the tests' own, and the fixtures that hand them out."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence

import pytest
import redis
from channels.layers import channel_layers

from realtime import backends
from tests.support.processes import free_port, wait_for_port


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


@pytest.fixture(scope="module")
def module_redis(redis_server):
    """The session's redis-server, flushed once for a module of e2e tests."""
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
