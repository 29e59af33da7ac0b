"""The deployment guide (docs/deploying.md), step by step on 127.0.0.1.

daphne with TLS (``wss://``, a trustme certificate), uvicorn's permessage-deflate,
and two daphne processes behind nginx with no sticky sessions: a message crosses
processes, and a graceful restart (SIGTERM, 4503) is recovered through the balancer.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import os
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trustme
from django.core.management import call_command

from realtime import status
from tests.support.processes import ROOT, free_port, wait_for_port
from tests.support.wsclient import Client

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def processes():
    """Start extra processes (nginx, TLS daphne); all stopped at teardown."""
    started: list[subprocess.Popen] = []

    def start(cmd, *, env=None, port, log):
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
        )
        started.append(proc)
        wait_for_port(port, proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def e2e_env(e2e_db, **extra):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.e2e_settings",
        "RT_TEST_DB": str(e2e_db),
        **extra,
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


async def test_wss_through_daphne_with_a_trustme_certificate(
    processes, e2e_db, e2e_users, tmp_path
):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    key_path, cert_path = tmp_path / "server.key", tmp_path / "server.pem"
    cert.private_key_pem.write_to_path(str(key_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    for blob in cert.cert_chain_pems[1:]:  # intermediates, if any, after the leaf
        blob.write_to_path(str(cert_path), append=True)
    port = free_port()
    # The command of docs/deploying.md, "TLS".
    processes(
        [
            sys.executable,
            "-m",
            "daphne",
            "-e",
            f"ssl:{port}:privateKey={key_path}:certKey={cert_path}:interface=127.0.0.1",
            "tests.asgi:application",
        ],
        env=e2e_env(e2e_db),
        port=port,
        log=tmp_path / "daphne-tls.log",
    )
    context = ssl.create_default_context()
    ca.configure_trust(context)

    # A ticket over https, then the socket over wss with it.
    response = httpx.post(
        f"https://127.0.0.1:{port}/realtime/ticket/",
        headers={"Authorization": f"Token {e2e_users['alice']['token']}"},
        verify=context,
    )
    assert response.status_code == 200, response.text
    ticket = response.json()["ticket"]
    client = await Client.open(
        f"wss://127.0.0.1:{port}/ws/auth/?ticket={ticket}", ssl=context
    )
    assert client.welcome["data"]["user"]["username"] == "alice"
    ack = await client.request("rt.subscribe", {"group": "room.1"})
    assert ack["type"] == "rt.ack"
    reply = await client.request("test.say", {"group": "room.1", "text": "over tls"})
    event = await client.next_event()
    while event["type"] != "test.say":  # rt.presence.join of alice herself first
        event = await client.next_event()
    assert event["data"]["text"] == "over tls" and event["seq"] == reply["data"]["seq"]
    await client.close()

    # A client that does not trust the CA is refused at the TLS handshake.
    with pytest.raises(ssl.SSLCertVerificationError):
        await Client.open(
            f"wss://127.0.0.1:{port}/ws/", ssl=ssl.create_default_context()
        )


def listen_queue(port: int) -> int:
    """The accept-queue size the kernel holds for a listening TCP port (``ss``'s
    Send-Q column of a listening socket)."""
    out = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out, f"nothing listens on {port}"
    return int(out[2])


def test_daphne_listens_with_the_documented_queue(processes, e2e_db, tmp_path):
    # The command of docs/deploying.md, "Listen queue", beside daphne's -b/-p.
    text = (ROOT / "docs" / "deploying.md").read_text()
    assert "daphne -e tcp:port=8001:interface=127.0.0.1:backlog=4096" in text
    wide, default = free_port(), free_port()
    daphne, app = str(Path(sys.executable).parent / "daphne"), "tests.asgi:application"
    processes(
        [daphne, "-e", f"tcp:port={wide}:interface=127.0.0.1:backlog=4096", app],
        env=e2e_env(e2e_db),
        port=wide,
        log=tmp_path / "daphne-backlog.log",
    )
    processes(
        [daphne, "-b", "127.0.0.1", "-p", str(default), app],
        env=e2e_env(e2e_db),
        port=default,
        log=tmp_path / "daphne-default.log",
    )
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert listen_queue(wide) == min(4096, somaxconn)
    assert listen_queue(default) == 50


def _compression_module():
    spec = importlib.util.spec_from_file_location(
        "compression", ROOT / "benchmarks" / "compression.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_uvicorn_negotiates_permessage_deflate_and_daphne_does_not(daphne):
    compression = _compression_module()
    limits = {"RATE": 100000.0, "BURST": 100000}
    uvicorn = daphne(server="uvicorn", **limits)
    plain = await compression.measure(uvicorn.port, 100, compress=False)
    deflated = await compression.measure(uvicorn.port, 100, compress=True)
    assert plain["extensions"] == []
    assert deflated["extensions"] == ["PerMessageDeflate"]
    assert deflated["wire_bytes"] < plain["wire_bytes"] * 0.5
    server = daphne(**limits)
    offered = await compression.measure(server.port, 20, compress=True)
    assert offered["extensions"] == []  # daphne answers without the extension


NGINX_CONF = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    upstream realtime {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://realtime;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 75s;
        }}
    }}
}}
"""


def status_report() -> dict:
    out = io.StringIO()
    call_command("realtime_status", "--json", stdout=out)
    return json.loads(out.getvalue())


async def wait_for(predicate, timeout=15):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await predicate()):
        assert asyncio.get_running_loop().time() < deadline, "condition not met"
        await asyncio.sleep(0.2)
    return value


async def test_nginx_round_robin_over_two_daphnes_with_a_graceful_restart(
    daphne, processes, redis_layer, tmp_path
):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        pytest.fail("nginx is not installed (apt-get install nginx; see .ci/run)")
    one = daphne(redis_url=redis_layer, PROCESS_HEARTBEAT=1)
    two = daphne(redis_url=redis_layer, PROCESS_HEARTBEAT=1)
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            tmp=tmp_path,
            port=port,
            servers="\n".join(
                f"        server 127.0.0.1:{s.port} max_fails=1 fail_timeout=5s;"
                for s in (one, two)
            ),
        )
    )
    processes(
        [nginx, "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"],
        port=port,
        log=tmp_path / "nginx.log",
    )
    url = f"ws://127.0.0.1:{port}/ws/"
    a = await Client.open(url)
    b = await Client.open(url)

    async def spread():
        report = await asyncio.to_thread(status_report)
        return sorted(p["connections"] for p in report["processes"]) == [1, 1]

    await wait_for(spread)  # round robin: one socket on each process

    for client in (a, b):
        ack = await client.request("rt.subscribe", {"group": "public.lb"})
        assert ack["type"] == "rt.ack"
    epoch = ack["data"]["epoch"]
    sent = await a.request("test.say", {"group": "public.lb", "text": "crossing"})
    event = await b.next_event()
    assert event["data"]["text"] == "crossing"
    assert event["seq"] == sent["data"]["seq"] == 1
    assert (await a.next_event())["seq"] == 1

    # Graceful deploy: SIGTERM to one process; its client sees 4503, reconnects
    # through nginx (which skips the stopped upstream) and recovers what it missed.
    one.stop()
    results = await asyncio.gather(
        a.closed_with(timeout=3), b.closed_with(timeout=3), return_exceptions=True
    )
    codes = [r[1] for r in results if isinstance(r, tuple)]
    assert codes == [status.WS_4503_SHUTTING_DOWN]
    moved, stayed = (a, b) if isinstance(results[0], tuple) else (b, a)
    for n in range(2):
        await stayed.request("test.say", {"group": "public.lb", "text": f"missed {n}"})
    back = await Client.open(url)
    ack = await back.request(
        "rt.subscribe", {"group": "public.lb", "since": 1, "epoch": epoch}
    )
    assert ack["data"]["recovered"] is True
    replay = [await back.next_event() for _ in range(2)]
    assert [e["seq"] for e in replay] == [2, 3]
    assert [e["data"]["text"] for e in replay] == ["missed 0", "missed 1"]
    await back.close()
    await stayed.close()
    assert moved is not stayed
