"""The readiness endpoint over a real daphne process, with Redis up and down."""

import time

import httpx
import pytest

from tests.conftest import RedisServer

pytestmark = [pytest.mark.e2e]


def get(server):
    return httpx.get(f"http://127.0.0.1:{server.port}/realtime/health/", timeout=10)


def test_health_follows_redis(daphne):
    redis_server = RedisServer()
    redis_server.start()
    try:
        server = daphne(redis_url=redis_server.url)
        ok = get(server)
        assert ok.status_code == 200
        assert ok.json() == {"status": "ok", "backend": "ok", "channel_layer": "ok"}
        redis_server.stop()
        down = get(server)
        assert down.status_code == 503
        assert down.json()["status"] == "unavailable"
        redis_server.start()
        deadline = time.monotonic() + 10
        while get(server).status_code != 200:
            assert time.monotonic() < deadline, "did not become ready again"
            time.sleep(0.1)
    finally:
        redis_server.stop()


def test_health_on_the_embedded_default(daphne):
    server = daphne()
    assert get(server).json() == {
        "status": "ok",
        "backend": "ok",
        "channel_layer": "ok",
    }
