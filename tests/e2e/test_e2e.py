"""End to end: real daphne processes, a real redis-server, real TCP WebSocket clients.

Authentication, origin checks, permissions, every close code, and delivery across two
processes sharing one Redis.
"""

from __future__ import annotations

import asyncio
import time
from unittest import mock

import httpx
import pytest
import redis
from django.core import signing
from websockets.exceptions import InvalidStatus

from realtime import status
from realtime.auth import TICKET_SALT
from tests.support.servers import django_shell
from tests.support.wsclient import Client

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]


@pytest.fixture(scope="module")
def servers(daphne_module, module_redis, e2e_users):
    """Two daphne processes sharing one Redis (channels-redis core layer)."""
    one = daphne_module(redis_url=module_redis, AUTH_TIMEOUT=1)
    two = daphne_module(redis_url=module_redis, AUTH_TIMEOUT=1)
    return one, two


@pytest.fixture(scope="module")
def users(e2e_users):
    return e2e_users


def token_header(users, name):
    return {"Authorization": f"Token {users[name]['token']}"}


def ticket_for(server, users, name):
    response = httpx.post(
        f"http://127.0.0.1:{server.port}/realtime/ticket/",
        headers=token_header(users, name),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["expires_in"] == 30
    return body["ticket"]


async def refused(url, **kw):
    frames_code = None
    client = await Client.open(url, **kw)
    frames_code = await client.closed_with()
    return client.welcome, frames_code


async def test_anonymous_connect_and_echo(servers):
    client = await Client.open(f"{servers[0].url}/ws/")
    assert client.welcome["type"] == "rt.welcome"
    assert client.welcome["data"]["user"] is None
    reply = await client.request("test.echo", {"text": "hi"})
    assert reply["data"] == {"text": "hi", "user": ""}
    await client.close()


async def test_token_header_authenticates(servers, users):
    client = await Client.open(
        f"{servers[0].url}/ws/auth/", headers=token_header(users, "alice")
    )
    assert client.welcome["data"]["user"]["username"] == "alice"
    assert client.welcome["data"]["auth_required"] is False
    await client.close()


async def test_bad_token_header_is_refused_4401(servers):
    welcome, (_frames, code) = await refused(
        f"{servers[0].url}/ws/", headers={"Authorization": "Token nope"}
    )
    assert welcome["type"] == "rt.error"
    assert welcome["data"]["code"] == "not_authenticated"
    assert code == status.WS_4401_NOT_AUTHENTICATED


async def test_deactivated_users_token_is_refused(servers, users):
    welcome, (_frames, code) = await refused(
        f"{servers[0].url}/ws/", headers=token_header(users, "ghost")
    )
    assert welcome["data"]["code"] == "not_authenticated"
    assert code == status.WS_4401_NOT_AUTHENTICATED


async def test_first_message_auth(servers, users):
    client = await Client.open(f"{servers[0].url}/ws/auth/")
    assert client.welcome["data"]["auth_required"] is True
    # Nothing but rt.auth is served before authentication.
    early = await client.request("test.echo", {"text": "too early"})
    assert early["data"]["code"] == "not_authenticated"
    sub = await client.request("rt.subscribe", {"group": "public.x"})
    assert sub["data"]["code"] == "not_authenticated"
    ack = await client.request("rt.auth", {"token": users["bob"]["token"]})
    assert ack["type"] == "rt.ack"
    assert ack["data"]["user"]["username"] == "bob"
    reply = await client.request("test.echo", {"text": "now"})
    assert reply["data"]["user"] == "bob"
    await client.close()


async def test_first_message_auth_with_bad_token_closes_4401(servers):
    client = await Client.open(f"{servers[0].url}/ws/auth/")
    await client.send({"type": "rt.auth", "data": {"token": "wrong"}})
    frames, code = await client.closed_with()
    assert frames[-1]["data"]["code"] == "not_authenticated"
    assert code == status.WS_4401_NOT_AUTHENTICATED


async def test_no_rt_auth_in_time_closes_4401(servers):
    started = time.monotonic()  # before the handshake: the server's deadline is later
    client = await Client.open(f"{servers[0].url}/ws/auth/")
    frames, code = await client.closed_with(timeout=10)
    assert code == status.WS_4401_NOT_AUTHENTICATED
    assert frames[-1]["data"]["code"] == "not_authenticated"
    assert 1.0 <= time.monotonic() - started < 6


async def test_ticket_works_once_on_any_process(servers, users):
    one, two = servers
    ticket = ticket_for(one, users, "alice")
    client = await Client.open(f"{one.url}/ws/auth/?ticket={ticket}")
    assert client.welcome["data"]["user"]["username"] == "alice"
    await client.close()
    for server in (one, two):  # replayed, on the same and on another process
        welcome, (_, code) = await refused(f"{server.url}/ws/auth/?ticket={ticket}")
        assert welcome["data"]["code"] == "not_authenticated"
        assert "already used" in welcome["data"]["message"]
        assert code == status.WS_4401_NOT_AUTHENTICATED


async def test_ticket_identifies_its_own_user(servers, users):
    ticket = ticket_for(servers[1], users, "bob")
    client = await Client.open(
        f"{servers[0].url}/ws/auth/?ticket={ticket}",
        headers=token_header(users, "alice") | {},
    )
    # The session/ticket order puts the ticket before the header: bob, never alice.
    assert client.welcome["data"]["user"]["username"] == "bob"
    await client.close()


async def test_expired_and_forged_tickets_are_refused(servers, users):
    payload = {"u": str(users["alice"]["pk"]), "n": "expired-nonce"}
    with mock.patch("django.core.signing.time.time", return_value=time.time() - 120):
        expired = signing.dumps(payload, salt=TICKET_SALT, compress=True)
    forged = signing.dumps(payload, salt=TICKET_SALT, key="not-the-secret")
    for ticket, reason in ((expired, "expired"), (forged, "not valid")):
        welcome, (_, code) = await refused(f"{servers[0].url}/ws/auth/?ticket={ticket}")
        assert reason in welcome["data"]["message"]
        assert code == status.WS_4401_NOT_AUTHENTICATED


async def test_ticket_endpoint_requires_authentication(servers):
    response = httpx.post(f"http://127.0.0.1:{servers[0].port}/realtime/ticket/")
    # 403, not 401: DRF answers 401 only when the first authentication class names a
    # WWW-Authenticate scheme, and SessionAuthentication comes first here.
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Authentication credentials were not provided."
    }


async def test_session_cookie_authenticates(servers, e2e_db):
    key = django_shell(
        e2e_db,
        (
            "from django.contrib.auth.models import User\n"
            "from django.contrib.sessions.backends.db import SessionStore\n"
            "from django.contrib.auth import SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY\n"
            "u = User.objects.get(username='alice')\n"
            "s = SessionStore()\n"
            "s[SESSION_KEY] = str(u.pk)\n"
            "s[BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'\n"
            "s[HASH_SESSION_KEY] = u.get_session_auth_hash()\n"
            "s.save()\n"
            "print(s.session_key)\n"
        ),
    )
    client = await Client.open(
        f"{servers[0].url}/ws/auth/",
        headers={"Cookie": f"sessionid={key}"},
        origin="http://allowed.example",
    )
    assert client.welcome["data"]["user"]["username"] == "alice"
    await client.close()


async def test_foreign_origin_is_refused_403(servers):
    for origin in (
        "http://evil.example",
        "null",
        "http://allowed.example:8080",
        "https://allowed.example",
    ):
        with pytest.raises(InvalidStatus) as refused_:
            await Client.open(f"{servers[0].url}/ws/", origin=origin)
        assert refused_.value.response.status_code == 403, origin
    client = await Client.open(f"{servers[0].url}/ws/", origin="http://allowed.example")
    assert client.welcome["type"] == "rt.welcome"
    await client.close()


async def test_unknown_route_is_refused_403(servers):
    with pytest.raises(InvalidStatus) as refused_:
        await Client.open(f"{servers[0].url}/ws/nothing-here/")
    assert refused_.value.response.status_code == 403


async def test_forbidden_at_connect_4403(servers, users):
    welcome, (_, code) = await refused(
        f"{servers[0].url}/ws/staff/", headers=token_header(users, "bob")
    )
    assert welcome["type"] == "rt.welcome"
    # on_connect refused after accept: rt.error forbidden, then 4403.
    client_frames = _
    assert client_frames[-1]["data"]["code"] == "forbidden"
    assert code == status.WS_4403_FORBIDDEN
    client = await Client.open(
        f"{servers[0].url}/ws/staff/", headers=token_header(users, "alice")
    )
    assert (await client.request("test.echo", {"text": "x"}))["type"] == "rt.ack"
    await client.close()


async def test_subscribe_permissions(servers, users):
    bob = await Client.open(f"{servers[0].url}/ws/", headers=token_header(users, "bob"))
    allowed = await bob.request("rt.subscribe", {"group": "room.1"})
    assert allowed["type"] == "rt.ack"
    for group in ("room.secret", "room.1.extra", "room.3", "user.1", "rooms.1"):
        denied = await bob.request("rt.subscribe", {"group": group})
        assert denied["data"]["code"] == "forbidden", group
    for group in ("room.1 ", "room/1", "x" * 100, "", "room.ü"):
        bad = await bob.request("rt.subscribe", {"group": group})
        assert bad["data"]["code"] == "bad_envelope", group
    secret = await bob.request("test.secret")
    assert secret["data"]["code"] == "forbidden"
    await bob.close()
    alice = await Client.open(
        f"{servers[0].url}/ws/", headers=token_header(users, "alice")
    )
    assert (await alice.request("rt.subscribe", {"group": "room.secret"}))[
        "type"
    ] == "rt.ack"
    assert (await alice.request("test.secret"))["data"] == {"ok": True}
    await alice.close()


async def test_event_crosses_processes_through_redis(servers):
    one, two = servers
    listener = await Client.open(f"{one.url}/ws/")
    ack = await listener.request("rt.subscribe", {"group": "public.cross"})
    assert ack["type"] == "rt.ack"
    sender = await Client.open(f"{two.url}/ws/")
    reply = await sender.request("test.say", {"group": "public.cross", "text": "hop"})
    assert reply["type"] == "rt.ack"
    event = await listener.next_event()
    assert event["type"] == "test.say"
    assert event["data"]["text"] == "hop"
    assert event["seq"] == reply["data"]["seq"] == ack["data"]["seq"] + 1
    await listener.close()
    await sender.close()


async def test_handler_crash_leaves_no_membership_or_presence(servers, module_redis):
    client = await Client.open(f"{servers[0].url}/ws/")
    await client.request("rt.subscribe", {"group": "public.crash"})
    assert (await client.request("test.boom"))["data"]["code"] == "server_error"
    store = redis.Redis.from_url(module_redis)
    assert store.zcard("asgi:group:public.crash") == 1
    assert store.zcard("rt:pc:{public.crash}") == 1
    await client.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (
        store.zcard("asgi:group:public.crash") or store.zcard("rt:pc:{public.crash}")
    ):
        await asyncio.sleep(0.05)
    assert store.zcard("asgi:group:public.crash") == 0
    assert store.zcard("rt:pc:{public.crash}") == 0


async def test_error_outside_a_handler_closes_4500(servers):
    _welcome, (frames, code) = await refused(f"{servers[0].url}/ws/broken/")
    assert frames[-1]["data"] == {
        "code": "server_error",
        "message": "Internal server error.",
    }
    assert code == status.WS_4500_SERVER_ERROR


async def test_oversized_frame_closes_4413(servers):
    client = await Client.open(f"{servers[0].url}/ws/")
    await client.ws.send('{"type":"test.echo","data":{"text":"' + "x" * 70_000 + '"}}')
    frames, code = await client.closed_with()
    assert frames[-1]["data"]["code"] == "too_large"
    assert code == status.WS_4413_FRAME_TOO_LARGE


async def test_binary_and_invalid_utf8_frames(servers):
    client = await Client.open(f"{servers[0].url}/ws/")
    await client.ws.send(b"\xff\xfe binary")
    reply = await client.recv()
    assert reply["data"]["code"] == "bad_envelope"
    assert (await client.request("test.echo", {"text": "fine"}))["type"] == "rt.ack"
    await client.close()


async def test_idle_connection_survives_redis_layer_timeouts(servers):
    """redis-py 8's 5 s socket timeout killed idle channels-redis consumers."""
    one, two = servers
    idle = await Client.open(f"{one.url}/ws/")
    await idle.request("rt.subscribe", {"group": "public.idle"})
    await asyncio.sleep(16)  # the point of the test: idle for longer than 15 s
    sender = await Client.open(f"{two.url}/ws/")
    await sender.request("test.say", {"group": "public.idle", "text": "still there?"})
    event = await idle.next_event()
    assert event["data"]["text"] == "still there?"
    await idle.close()
    await sender.close()
