"""Redis Sentinel: channels-redis and the realtime backend follow the master."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.processes import free_port, wait_for_port
from tests.support.redis_server import RedisServer
from tests.support.wsclient import Client

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]


@pytest.fixture
def sentinel():
    master = RedisServer()
    master.start()
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="rt-sentinel-"))
    conf = folder / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
        f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
    )
    proc = subprocess.Popen(
        [shutil.which("redis-server"), str(conf), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, proc)
    yield master, port
    proc.terminate()
    proc.wait(10)
    master.stop()
    shutil.rmtree(folder, ignore_errors=True)


async def test_history_and_delivery_through_sentinel(sentinel, settings, tmp_path):
    from channels.layers import channel_layers

    import realtime
    from realtime import backends
    from realtime.backends import get_backend
    from realtime.backends.redis import RedisBackend

    master, sentinel_port = sentinel
    host = {"sentinels": [("127.0.0.1", sentinel_port)], "master_name": "mymaster"}
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [host]},
        }
    }
    channel_layers.backends = {}
    backends.reset()
    backend = get_backend()
    assert isinstance(backend, RedisBackend)
    assert backend.url == "sentinel:mymaster"
    seq = await realtime.anotify("public.sen", "test.say", {"text": "one"})
    assert seq == 1
    # The master found through Sentinel is the real one: the history is there.
    import redis

    direct = redis.Redis(port=master.port)
    assert direct.hget("rt:meta:{public.sen}", "seq") == b"1"
    direct.close()
    read = await backend.since("public.sen", 0, None)
    assert [s for s, _ in read.frames] == [1]
    await backend.close()


async def test_two_processes_behind_sentinel(sentinel, daphne):
    _master, sentinel_port = sentinel
    env = {"RT_SENTINEL": f"127.0.0.1:{sentinel_port}:mymaster"}
    one, two = daphne(env=env), daphne(env=env)
    listener = await Client.open(f"{one.url}/ws/")
    ack = await listener.request("rt.subscribe", {"group": "public.s2"})
    assert ack["type"] == "rt.ack"
    sender = await Client.open(f"{two.url}/ws/")
    reply = await sender.request(
        "test.say", {"group": "public.s2", "text": "via sentinel"}
    )
    event = await listener.next_event()
    assert (event["data"]["text"], event["seq"]) == (
        "via sentinel",
        reply["data"]["seq"],
    )
    assert event["seq"] == 1  # history kept on the master Sentinel names
    await listener.close()
    await sender.close()
