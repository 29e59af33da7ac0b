"""Every host form channels-redis accepts reaches every Redis client realtime makes.

A password-protected redis-server configured in the dict forms (``address`` plus
``password``, ``host``/``port``/``db`` plus ``password``, ``username``), end to end
through a real daphne process: the ticket handshake, subscribe with history, a
handler's notify, the health endpoint and ``realtime_status``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.processes import ROOT
from tests.support.redis_server import RedisServer
from tests.support.wsclient import Client

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

PASSWORD = "s3cret-pw"
CORE = "channels_redis.core.RedisChannelLayer"
PUBSUB = "channels_redis.pubsub.RedisPubSubChannelLayer"


@pytest.fixture(scope="module")
def protected():
    """A redis-server that refuses every command until AUTH with PASSWORD."""
    server = RedisServer(args=["--requirepass", PASSWORD])
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


def forms(port: int) -> dict[str, dict]:
    return {
        "address": {"address": f"redis://127.0.0.1:{port}/0", "password": PASSWORD},
        "host-port-db": {
            "host": "127.0.0.1",
            "port": port,
            "db": 1,
            "password": PASSWORD,
        },
        "username": {
            "address": f"redis://127.0.0.1:{port}/2",
            "username": "default",
            "password": PASSWORD,
        },
    }


def layers_env(host: dict, backend: str = CORE) -> dict[str, str]:
    layers = {"default": {"BACKEND": backend, "CONFIG": {"hosts": [host]}}}
    return {"RT_CHANNEL_LAYERS": json.dumps(layers)}


def manage(
    e2e_db: Path, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess:
    """``manage.py <args>`` with the e2e settings in a process of its own."""
    full_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.e2e_settings",
        "RT_TEST_DB": str(e2e_db),
        **env,
    }
    full_env.pop("PYTEST_CURRENT_TEST", None)
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def ticket(server, users, name: str) -> str:
    response = httpx.post(
        f"http://127.0.0.1:{server.port}/realtime/ticket/",
        headers={"Authorization": f"Token {users[name]['token']}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()["ticket"]


async def next_of_type(client: Client, type_: str) -> dict:
    """The next event of ``type_`` (presence events may come first)."""
    while True:
        event = await client.next_event()
        if event["type"] == type_:
            return event


@pytest.mark.parametrize(
    ("form", "backend"),
    [
        ("address", CORE),
        ("host-port-db", CORE),
        ("username", CORE),
        ("address", PUBSUB),
    ],
)
async def test_password_protected_redis_in_dict_form(
    protected, daphne, e2e_db, e2e_users, form, backend
):
    host = forms(protected.port)[form]
    env = layers_env(host, backend)
    server = daphne(env=env, PROCESS_HEARTBEAT=1)
    group = f"public.pw-{form}-{backend.split('.')[1]}"

    client = await Client.open(
        f"{server.url}/ws/auth/?ticket={ticket(server, e2e_users, 'alice')}"
    )
    assert client.welcome["data"]["user"]["username"] == "alice"
    ack = await client.request("rt.subscribe", {"group": group})
    assert ack["type"] == "rt.ack", ack
    epoch = ack["data"]["epoch"]
    reply = await client.request("test.say", {"group": group, "text": "hello"})
    assert reply["type"] == "rt.ack", reply
    event = await next_of_type(client, "test.say")
    assert (event["data"]["text"], event["seq"]) == ("hello", reply["data"]["seq"])

    # A second socket recovers the event from history kept on the protected Redis.
    late = await Client.open(f"{server.url}/ws/")
    ack = await late.request(
        "rt.subscribe",
        {"group": group, "since": 0, "epoch": epoch},
    )
    assert ack["type"] == "rt.ack", ack
    assert ack["data"]["recovered"] is True
    replayed = await next_of_type(late, "test.say")
    assert (replayed["seq"], replayed["data"]["text"]) == (event["seq"], "hello")

    health = httpx.get(f"http://127.0.0.1:{server.port}/realtime/health/", timeout=10)
    assert (health.status_code, health.json()) == (
        200,
        {"status": "ok", "backend": "ok", "channel_layer": "ok"},
    )

    # The process's first heartbeat predates its first socket: wait for one that
    # counts it (PROCESS_HEARTBEAT=1) before asking for the status.
    options = {key: value for key, value in host.items() if key != "address"}
    store = (
        redis.Redis.from_url(host["address"], **options)
        if "address" in host
        else redis.Redis(**options)
    )
    deadline = time.monotonic() + 10
    while not any(
        json.loads(value)["connections"]
        for value in store.mget(store.keys("rt:proc:*") or ["-"])
        if value
    ):
        assert time.monotonic() < deadline, "no heartbeat counted the socket"
        time.sleep(0.1)
    store.close()
    status = manage(e2e_db, "realtime_status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["backend"] == "redis"
    assert report["connections"] >= 1
    assert group in report["history"]
    assert PASSWORD not in status.stdout  # credentials never printed
    await client.close()
    await late.close()


def test_deploy_check_accepts_the_right_password(protected, e2e_db):
    for host in forms(protected.port).values():
        done = manage(e2e_db, "check", "--deploy", env=layers_env(host))
        assert "realtime.E009" not in done.stderr + done.stdout, done.stderr
        assert done.returncode == 0, done.stderr


def test_deploy_check_reports_a_wrong_password(protected, e2e_db):
    host = {**forms(protected.port)["host-port-db"], "password": "wrong"}
    done = manage(e2e_db, "check", "--deploy", env=layers_env(host))
    assert done.returncode != 0
    assert "realtime.E009" in done.stderr
    assert "authentication" in done.stderr.lower()
    assert f"127.0.0.1:{protected.port}" in done.stderr
    assert "wrong" not in done.stderr  # the password itself is never printed


def test_deploy_check_reports_a_missing_password(protected, e2e_db):
    host = {"address": f"redis://127.0.0.1:{protected.port}/0"}
    done = manage(e2e_db, "check", "--deploy", env=layers_env(host))
    assert done.returncode != 0
    assert "realtime.E009" in done.stderr
    assert "password" in done.stderr.lower()


def test_deploy_check_reports_tls_to_a_plain_server(protected, e2e_db):
    host = {"address": f"rediss://127.0.0.1:{protected.port}/0", "password": PASSWORD}
    done = manage(e2e_db, "check", "--deploy", env=layers_env(host))
    assert done.returncode != 0
    assert "realtime.E009" in done.stderr
    assert "TLS" in done.stderr


def test_deploy_check_checks_redis_url_too(protected, e2e_db):
    good = forms(protected.port)["address"]
    env = {
        **layers_env(good),
        "RT_SET_REDIS_URL": json.dumps(f"redis://127.0.0.1:{protected.port}/3"),
    }
    done = manage(e2e_db, "check", "--deploy", env=env)
    assert done.returncode != 0
    assert "REDIS_URL" in done.stderr and "realtime.E009" in done.stderr


def test_plain_check_does_not_connect(protected, e2e_db):
    host = {**forms(protected.port)["address"], "password": "wrong"}
    done = manage(e2e_db, "check", env=layers_env(host))
    assert done.returncode == 0, done.stderr
