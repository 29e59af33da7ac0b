"""Authorization attacks beyond test_e2e: none leaks a single event.

Each attacker connection, after its attempts, waits for a sentinel event sent to a
group it may read *after* the protected events: frames arrive in order, so if the
sentinel comes first and alone, nothing protected leaked.
"""

from __future__ import annotations

import httpx
import pytest

from realtime import status
from tests.conftest import django_shell
from tests.wsclient import Client

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]


@pytest.fixture(scope="module")
def server(daphne_module, module_redis, e2e_users):
    return daphne_module(redis_url=module_redis, MAX_INVALID_FRAMES=100)


def auth(users, name):
    return {"Authorization": f"Token {users[name]['token']}"}


async def publish(url, group, text):
    sender = await Client.open(f"{url}/ws/")
    reply = await sender.request("test.say", {"group": group, "text": text})
    assert reply["type"] == "rt.ack", reply
    await sender.close()


async def assert_nothing_leaked(url, attacker, protected):
    """Send to every protected group, then a sentinel the attacker may read."""
    ack = await attacker.request("rt.subscribe", {"group": "public.sentinel"})
    assert ack["type"] == "rt.ack"
    for group in protected:
        await publish(url, group, "secret")
    await publish(url, "public.sentinel", "sentinel")
    frame = await attacker.next_event()
    while frame["type"].startswith("rt.presence."):  # its own join
        frame = await attacker.next_event()
    assert frame["group"] == "public.sentinel", f"leaked: {frame}"
    assert frame["data"]["text"] == "sentinel"


async def test_personal_group_of_another_user(server, e2e_users):
    alice = e2e_users["alice"]["pk"]
    mallory = await Client.open(f"{server.url}/ws/", headers=auth(e2e_users, "mallory"))
    for group in (
        f"user.{alice}",
        f"user.0{alice}",
        f"user.{alice}.x",
        f"USER.{alice}",
        f"user.{alice}-",
        "user.*",
        "user.",
    ):
        reply = await mallory.request("rt.subscribe", {"group": group})
        assert reply["data"]["code"] in ("forbidden", "bad_envelope"), group
    await assert_nothing_leaked(
        server.url, mallory, [f"user.{alice}", "room.secret", f"user.0{alice}"]
    )
    await mallory.close()


async def test_handler_name_and_type_tricks_reach_nothing(server, e2e_users):
    bob = await Client.open(f"{server.url}/ws/", headers=auth(e2e_users, "bob"))
    for type_ in (
        "TEST.SECRET",
        "Test.Secret",
        "test.secret ",
        " test.secret",
        "test.secre\u0442",  # Cyrillic te
        "test\u200b.secret",
        "\uff54\uff45\uff53\uff54.secret",  # fullwidth
        "rt.secret",
        "rt.test.secret",
        "secret",
        "websocket.disconnect",
        "websocket.receive",
        "websocket.close",
        "dispatch",
        "__init__",
        "__call__",
        "close",
        "deliver",
        "_application",
        "rt.welcome",
        "rt.event",
    ):
        reply = await bob.request(type_)
        assert reply["type"] == "rt.error", type_
        assert reply["data"]["code"] in ("unknown_type", "bad_envelope"), type_
    # The real one is refused by its permission; the connection still works.
    assert (await bob.request("test.secret"))["data"]["code"] == "forbidden"
    assert (await bob.request("test.secret", v=1))["data"]["code"] == "forbidden"
    assert (await bob.request("test.echo", {"text": "alive"}))["type"] == "rt.ack"
    await assert_nothing_leaked(server.url, bob, ["room.secret"])
    await bob.close()


async def test_rt_auth_cannot_switch_user(server, e2e_users):
    """An authenticated connection cannot become another user with rt.auth."""
    ticket = httpx.post(
        f"http://127.0.0.1:{server.port}/realtime/ticket/",
        headers=auth(e2e_users, "alice"),
    ).json()["ticket"]
    mallory = await Client.open(f"{server.url}/ws/", headers=auth(e2e_users, "mallory"))
    for token in (ticket, e2e_users["alice"]["token"]):
        reply = await mallory.request("rt.auth", {"token": token})
        assert reply["data"]["code"] == "bad_envelope"
    alice = e2e_users["alice"]["pk"]
    await assert_nothing_leaked(server.url, mallory, [f"user.{alice}"])
    await mallory.close()
    # The ticket was never redeemed by the refused attempt: alice can still use it.
    client = await Client.open(f"{server.url}/ws/auth/?ticket={ticket}")
    assert client.welcome["data"]["user"]["username"] == "alice"
    await client.close()


async def test_tampered_ticket_naming_another_user(server, e2e_users):
    ticket = httpx.post(
        f"http://127.0.0.1:{server.port}/realtime/ticket/",
        headers=auth(e2e_users, "mallory"),
    ).json()["ticket"]
    flipped = ticket[:5] + ("A" if ticket[5] != "A" else "B") + ticket[6:]
    client = await Client.open(f"{server.url}/ws/auth/?ticket={flipped}")
    _frames, code = await client.closed_with()
    assert client.welcome["data"]["code"] == "not_authenticated"
    assert code == status.WS_4401_NOT_AUTHENTICATED


async def test_user_deactivated_while_connected(daphne, e2e_db, e2e_users):
    """A user deactivated while connected cannot open a new connection, and the open
    one is closed with 4401 at the next re-check (REVALIDATE_INTERVAL)."""
    server = daphne(REVALIDATE_INTERVAL=1)
    token = django_shell(
        e2e_db,
        "from django.contrib.auth.models import User\n"
        "from rest_framework.authtoken.models import Token\n"
        "u, _ = User.objects.get_or_create(username='carol')\n"
        "u.is_active = True; u.save()\n"
        "t, _ = Token.objects.get_or_create(user=u)\n"
        "print(t.key)\n",
    )
    headers = {"Authorization": f"Token {token}"}
    carol = await Client.open(f"{server.url}/ws/auth/", headers=headers)
    assert carol.welcome["data"]["user"]["username"] == "carol"
    bob = await Client.open(
        f"{server.url}/ws/auth/",
        headers={"Authorization": f"Token {e2e_users['bob']['token']}"},
    )
    django_shell(
        e2e_db,
        "from django.contrib.auth.models import User\n"
        "User.objects.filter(username='carol').update(is_active=False)\nprint(1)\n",
    )
    again = await Client.open(f"{server.url}/ws/auth/", headers=headers)
    _frames, code = await again.closed_with()
    assert code == status.WS_4401_NOT_AUTHENTICATED
    frames, code = await carol.closed_with(timeout=5)
    assert code == status.WS_4401_NOT_AUTHENTICATED
    assert frames[-1]["data"]["code"] == "not_authenticated"
    # Other users' connections on the same process are untouched.
    assert (await bob.request("test.echo", {"text": "still"}))["type"] == "rt.ack"
    await bob.close()


async def test_deleted_token_closes_its_connections(daphne, e2e_db):
    """Revoking a DRF token (deleting it) closes the sockets that used it with 4401
    at the next re-check; the same user's other credentials are unaffected."""
    server = daphne(REVALIDATE_INTERVAL=1)
    token = django_shell(
        e2e_db,
        "from django.contrib.auth.models import User\n"
        "from rest_framework.authtoken.models import Token\n"
        "u, _ = User.objects.get_or_create(username='dave')\n"
        "u.is_active = True; u.save()\n"
        "Token.objects.filter(user=u).delete()\n"
        "print(Token.objects.create(user=u).key)\n",
    )
    by_header = await Client.open(
        f"{server.url}/ws/auth/", headers={"Authorization": f"Token {token}"}
    )
    assert by_header.welcome["data"]["user"]["username"] == "dave"
    by_message = await Client.open(f"{server.url}/ws/auth/")
    ack = await by_message.request("rt.auth", {"token": token})
    assert ack["data"]["user"]["username"] == "dave"
    django_shell(
        e2e_db,
        "from rest_framework.authtoken.models import Token\n"
        "Token.objects.filter(user__username='dave').delete()\nprint(1)\n",
    )
    for client in (by_header, by_message):
        frames, code = await client.closed_with(timeout=5)
        assert code == status.WS_4401_NOT_AUTHENTICATED
        assert frames[-1]["data"]["code"] == "not_authenticated"


SESSION = (
    "from django.contrib.auth import SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY\n"
    "from django.contrib.sessions.backends.db import SessionStore\n"
    "def session(u):\n"
    "    s = SessionStore()\n"
    "    s[SESSION_KEY] = str(u.pk)\n"
    "    s[BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'\n"
    "    s[HASH_SESSION_KEY] = u.get_session_auth_hash()\n"
    "    s.save()\n"
    "    return s.session_key\n"
)


async def test_ended_session_closes_its_connections(daphne, e2e_db):
    """A session logged out (deleted) or invalidated by a password change closes the
    sockets it opened with 4401 at the next re-check; the user's other session and
    other users stay connected."""
    server = daphne(REVALIDATE_INTERVAL=1)
    keys = django_shell(
        e2e_db,
        SESSION + "from django.contrib.auth.models import User\n"
        "erin, _ = User.objects.get_or_create(username='erin')\n"
        "frank, _ = User.objects.get_or_create(username='frank')\n"
        "print(session(erin), session(erin), session(frank))\n",
    )
    out, kept, changed = keys.split()
    clients = {}
    for name, key in (("out", out), ("kept", kept), ("changed", changed)):
        clients[name] = await Client.open(
            f"{server.url}/ws/auth/",
            headers={"Cookie": f"sessionid={key}"},
            origin="http://allowed.example",
        )
        assert clients[name].welcome["data"]["user"]["username"] in ("erin", "frank")
    django_shell(
        e2e_db,
        "from django.contrib.auth.models import User\n"
        "from django.contrib.sessions.backends.db import SessionStore\n"
        f"SessionStore('{out}').delete()\n"  # what logout() does
        "frank = User.objects.get(username='frank')\n"
        "frank.set_password('a new one'); frank.save()\nprint(1)\n",
    )
    for name in ("out", "changed"):
        frames, code = await clients[name].closed_with(timeout=5)
        assert code == status.WS_4401_NOT_AUTHENTICATED, name
        assert frames[-1]["data"]["code"] == "not_authenticated"
    kept_client = clients["kept"]
    assert (await kept_client.request("test.echo", {"text": "on"}))["type"] == "rt.ack"
    await kept_client.close()
