"""What every test shares: a clean hub, channel layer and backend per test.

Fixtures that start things (redis-server, daphne / uvicorn, Chromium, npm tools) live
in tests/support/ and are loaded here as plugins; docs/architecture.md describes the
layout of tests/.
"""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import channel_layers

from realtime import backends
from realtime.hub import shutdown_hub
from realtime.settings import realtime_settings

pytest_plugins = [
    "tests.support.redis_server",
    "tests.support.servers",
    "tests.support.browser",
    "tests.support.npm",
]


@pytest.fixture(autouse=True)
async def _fresh_realtime_state():
    """Each test gets its own hub, channel layer and memory backend."""
    channel_layers.backends = {}
    backends.reset()
    realtime_settings.reload()
    yield
    await shutdown_hub()
    channel_layers.backends = {}
    backends.reset()


@pytest.fixture
def loop():
    """A private event loop for sync tests that drive WebSocket clients and call the
    sync ``notify()`` like a view would."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()
