"""Prometheus metrics through a real connection lifecycle on real daphne processes."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from realtime import status
from tests.support.wsclient import Client

pytestmark = [pytest.mark.django_db]


def scrape(server, **headers) -> httpx.Response:
    return httpx.get(
        f"http://127.0.0.1:{server.port}/realtime/metrics/", headers=headers
    )


class Metrics:
    def __init__(self, server) -> None:
        response = scrape(server)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        self.samples = [
            sample
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        ]

    def __call__(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels``."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )


async def wait_metric(server, name, expected, timeout=10, **labels):
    deadline = time.monotonic() + timeout
    while True:
        value = Metrics(server)(name, **labels)
        if value == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}{labels} is {value}, expected {expected}")
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def server(daphne_module, e2e_users):
    return daphne_module(METRICS_ENABLED=True)


@pytest.mark.e2e
async def test_connection_lifecycle_moves_the_metrics(server):
    before = Metrics(server)
    client = await Client.open(f"{server.url}/ws/")
    after = Metrics(server)
    consumer = {"consumer": "EchoConsumer"}
    assert after("realtime_connections_open", **consumer) == 1
    assert (
        after("realtime_connects_total", **consumer)
        == before("realtime_connects_total", **consumer) + 1
    )
    assert (
        after("realtime_frames_out_total", type="rt.welcome")
        == before("realtime_frames_out_total", type="rt.welcome") + 1
    )

    assert (await client.request("test.echo", {"text": "hi"}))["type"] == "rt.ack"
    assert (await client.request("zzz.unknown"))["data"]["code"] == "unknown_type"
    await client.ws.send("not json")
    assert (await client.recv())["data"]["code"] == "bad_json"
    ack = await client.request("rt.subscribe", {"group": "public.m"})
    assert ack["data"]["recovered"] is True
    await client.request("test.say", {"group": "public.m", "text": "one"})
    gone = await client.request(
        "rt.subscribe", {"group": "public.n", "since": 5, "epoch": "old"}
    )
    assert gone["data"]["recovered"] is False
    ok = await client.request("rt.subscribe", {"group": "public.m", "since": 0})
    assert ok["data"]["recovered"] is True

    now = Metrics(server)

    def delta(name, **labels):
        return now(name, **labels) - before(name, **labels)

    assert delta("realtime_frames_in_total", type="test.echo") == 1
    assert delta("realtime_frames_in_total", type="other") == 1  # zzz.unknown
    assert delta("realtime_frames_in_total", type="rt.subscribe") == 3
    assert delta("realtime_errors_total", code="unknown_type") == 1
    assert delta("realtime_errors_total", code="bad_json") == 1
    assert delta("realtime_frames_out_total", type="rt.ack") == 5
    assert delta("realtime_notify_total", type="test.say") == 1
    assert delta("realtime_notify_seconds_count") == 1  # the say's notify()
    # One dispatch to one socket: the say, replayed frames are not fan-out.
    assert delta("realtime_dispatches_total") == 1
    assert delta("realtime_deliveries_total") == 1
    assert delta("realtime_frames_out_total", type="test.say") == 1
    assert delta("realtime_recoveries_total", outcome="recovered") == 1
    assert delta("realtime_recoveries_total", outcome="not_recovered") == 1

    closed_before = Metrics(server)("realtime_disconnects_total", code="1000")
    await client.close()
    await wait_metric(server, "realtime_connections_open", 0, **consumer)
    closed_after = Metrics(server)("realtime_disconnects_total", code="1000")
    assert closed_after - closed_before == 1


@pytest.mark.e2e
async def test_close_codes_and_auth_failures_are_counted(server, e2e_users):
    before = Metrics(server)
    refused = await Client.open(
        f"{server.url}/ws/", headers={"Authorization": "Token not-a-token"}
    )
    _, code = await refused.closed_with()
    assert code == status.WS_4401_NOT_AUTHENTICATED
    pending = await Client.open(f"{server.url}/ws/auth/")
    await pending.send({"type": "rt.auth", "data": {"token": "still-wrong"}})
    _, code = await pending.closed_with()
    assert code == status.WS_4401_NOT_AUTHENTICATED
    anonymous = await Client.open(f"{server.url}/ws/staff/")  # IsAuthenticated
    await anonymous.send({"type": "rt.auth", "data": {}})
    _, code = await anonymous.closed_with()
    assert code == status.WS_4401_NOT_AUTHENTICATED
    # Flood until the rate limit closes the connection (4429).
    flood = await Client.open(f"{server.url}/ws/")
    for n in range(200):
        try:
            await flood.send({"type": "rt.ping", "id": f"p{n}"})
        except Exception:
            break
    _, code = await flood.closed_with()
    assert code == status.WS_4429_RATE_LIMITED
    await asyncio.sleep(0)

    async def settled():
        return Metrics(server)("realtime_connections_open") == 0

    deadline = time.monotonic() + 10
    while not await settled():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    now = Metrics(server)

    def delta(name, **labels):
        return now(name, **labels) - before(name, **labels)

    assert delta("realtime_auth_failures_total", reason="token_invalid") == 2
    assert delta("realtime_auth_failures_total", reason="token_missing") == 1
    assert delta("realtime_auth_failures_total") == 3
    assert delta("realtime_disconnects_total", code="4401") == 3
    assert delta("realtime_disconnects_total", code="4429") == 1
    assert delta("realtime_errors_total", code="rate_limited") >= 10
    assert delta("realtime_errors_total", code="not_authenticated") == 3


@pytest.mark.e2e
def test_the_endpoint_is_protected(server, daphne):
    assert scrape(server).status_code == 200
    # Relayed by a proxy: the address check no longer applies.
    assert scrape(server, **{"X-Forwarded-For": "203.0.113.9"}).status_code == 403
    off = daphne()  # METRICS_ENABLED defaults to False
    assert scrape(off).status_code == 404
    token = daphne(METRICS_ENABLED=True, METRICS_TOKEN="123456", METRICS_ALLOWED_IPS=[])
    assert scrape(token).status_code == 403
    assert scrape(token, Authorization="Bearer 654321").status_code == 403
    assert scrape(token, Authorization="Bearer 123456").status_code == 200


@pytest.mark.e2e
async def test_multiprocess_mode_sums_every_process(daphne, tmp_path, monkeypatch):
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    one = daphne(METRICS_ENABLED=True)
    two = daphne(METRICS_ENABLED=True)
    a = await Client.open(f"{one.url}/ws/")
    b = await Client.open(f"{two.url}/ws/")
    c = await Client.open(f"{two.url}/ws/")
    for server in (one, two):  # either process reports all of them
        metrics = Metrics(server)
        assert metrics("realtime_connections_open", consumer="EchoConsumer") == 3
        assert metrics("realtime_connects_total", consumer="EchoConsumer") == 3
        assert metrics("realtime_frames_out_total", type="rt.welcome") == 3
    two.stop()  # SIGTERM: its sockets close with 4503, its live gauges go away
    for client in (b, c):
        _, code = await client.closed_with()
        assert code == status.WS_4503_SHUTTING_DOWN
    metrics = Metrics(one)
    assert metrics("realtime_connections_open", consumer="EchoConsumer") == 1
    assert metrics("realtime_disconnects_total", code="4503") == 2
    await a.close()
