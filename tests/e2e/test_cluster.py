"""Redis Cluster is refused, clearly: by ``check --deploy`` and at first use.

A redis-server started with ``--cluster-enabled yes`` is a cluster node: without
slots it answers CLUSTERDOWN, with every slot it still refuses multi-key commands
across slots (CROSSSLOT). realtime supports several standalone shards, each with
Sentinel, instead (docs/decisions.md).
"""

from __future__ import annotations

import json
import shutil

import pytest
import redis
from websockets.exceptions import InvalidStatus

from realtime.backends.redis import RedisBackend
from realtime.exceptions import RedisClusterUnsupported
from tests.e2e.test_connection_forms import layers_env, manage
from tests.support.processes import free_port
from tests.support.redis_server import RedisServer
from tests.support.wsclient import Client

pytestmark = [pytest.mark.e2e]


def cluster_node() -> RedisServer:
    node = RedisServer()
    node.args = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        f"{node.dir}/nodes.conf",
        # The bus port defaults to port + 10000, past 65535 for many free ports.
        "--cluster-port",
        str(free_port()),
    ]
    node.start()
    return node


@pytest.fixture
def node():
    server = cluster_node()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


def test_deploy_check_refuses_a_cluster_node(node, e2e_db):
    host = {"address": f"redis://127.0.0.1:{node.port}/0"}
    done = manage(e2e_db, "check", "--deploy", env=layers_env(host))
    assert done.returncode != 0
    assert "realtime.E010" in done.stderr
    assert "Redis Cluster" in done.stderr
    assert "Sentinel" in done.stderr  # the supported alternative is named


def test_deploy_check_refuses_a_cluster_node_as_redis_url(node, e2e_db, redis_url):
    env = {
        **layers_env({"address": redis_url}),
        "RT_SET_REDIS_URL": json.dumps(f"redis://127.0.0.1:{node.port}/0"),
    }
    done = manage(e2e_db, "check", "--deploy", env=env)
    assert done.returncode != 0
    assert "REDIS_URL" in done.stderr and "realtime.E010" in done.stderr


async def test_backend_refuses_a_cluster_node_without_slots(node):
    backend = RedisBackend(f"redis://127.0.0.1:{node.port}/0")
    try:
        with pytest.raises(RedisClusterUnsupported, match="Sentinel"):
            await backend.append("public.c", "", "")
        with pytest.raises(RedisClusterUnsupported, match="standalone"):
            await backend.positions(["public.c", "public.d"])  # a pipeline
    finally:
        await backend.close()


async def test_backend_refuses_a_cluster_node_that_serves_every_slot(node):
    store = redis.Redis(port=node.port)
    store.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    store.close()
    backend = RedisBackend(f"redis://127.0.0.1:{node.port}/0")
    try:
        # History keys share a hash tag, so they work; presence spans slots.
        with pytest.raises(RedisClusterUnsupported, match="Redis Cluster"):
            for _ in range(100):  # until the node's cluster state is ok
                try:
                    await backend.presence_join("public.c", "c1", "u1", {}, 30)
                except RedisClusterUnsupported as error:
                    if "CLUSTERDOWN" not in str(error):
                        raise
    finally:
        await backend.close()


async def test_daphne_on_a_cluster_node_refuses_and_says_why(node, daphne):
    host = {"address": f"redis://127.0.0.1:{node.port}/0"}
    server = daphne(env=layers_env(host))
    for _ in range(2):
        with pytest.raises(InvalidStatus) as refused:
            await Client.open(f"{server.url}/ws/")
        assert refused.value.response.status_code == 403
    log = server.log.read_text()
    assert log.count("realtime does not support Redis Cluster") == 1, log
    assert "Sentinel" in log
    assert "Traceback" not in log
