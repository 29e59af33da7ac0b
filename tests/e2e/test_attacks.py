"""Attacks on a real server: authorization, credentials, memory and fan-out abuse.

Each attacker connection that must not read something, after its attempts, waits
for a sentinel event sent to a group it may read *after* the protected events:
frames arrive in order, so if the sentinel comes first and alone, nothing protected
leaked. Every attack is bounded in count and time, on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import time
from pathlib import Path

import httpx
import pytest
from django.core import signing
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from realtime import status
from realtime.auth import TICKET_SALT
from tests.support.processes import ROOT
from tests.support.rtprobe import Heartbeat, rss_kib
from tests.support.servers import django_shell
from tests.support.wsclient import Client

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]


@pytest.fixture(scope="module")
def servers(daphne_module, module_redis, e2e_users):
    """``servers(kind)``: the module's daphne or uvicorn process (started on first use)."""
    started = {}

    def get(kind: str = "daphne"):
        if kind not in started:
            started[kind] = daphne_module(
                redis_url=module_redis, server=kind, MAX_INVALID_FRAMES=100
            )
        return started[kind]

    return get


@pytest.fixture(scope="module")
def server(servers):
    return servers("daphne")


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
    # A valid group name nobody may join is forbidden; "*" is no group name at all.
    for group, code in (
        (f"user.{alice}", "forbidden"),
        (f"user.0{alice}", "forbidden"),
        (f"user.{alice}.x", "forbidden"),
        (f"USER.{alice}", "forbidden"),
        (f"user.{alice}-", "forbidden"),
        ("user.*", "bad_envelope"),
        ("user.", "forbidden"),
    ):
        reply = await mallory.request("rt.subscribe", {"group": group})
        assert reply["data"]["code"] == code, group
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
        # Any string is a well-formed type: the lookup (handlers, then the
        # registry) is what finds nothing.
        assert reply["data"]["code"] == "unknown_type", type_
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
    for name, key, user in (
        ("out", out, "erin"),
        ("kept", kept, "erin"),
        ("changed", changed, "frank"),
    ):
        clients[name] = await Client.open(
            f"{server.url}/ws/auth/",
            headers={"Cookie": f"sessionid={key}"},
            origin="http://allowed.example",
        )
        assert clients[name].welcome["data"]["user"]["username"] == user
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


def new_session(e2e_db, username: str, *, token: bool = False) -> tuple[str, str]:
    """A live Django session of ``username`` (created if needed), and its DRF token."""
    out = django_shell(
        e2e_db,
        SESSION + "from django.contrib.auth.models import User\n"
        "from rest_framework.authtoken.models import Token\n"
        f"u, _ = User.objects.get_or_create(username={username!r})\n"
        "u.is_active = True; u.set_password('first'); u.save()\n"
        "Token.objects.filter(user=u).delete()\n"
        f"key = Token.objects.create(user=u).key if {token!r} else '-'\n"
        "print(session(u), key)\n",
    )
    session_key, token_key = out.split()
    return session_key, token_key


def cookie_headers(session_key: str, *, extra: str = "") -> dict[str, str]:
    return {"Cookie": f"{extra}sessionid={session_key}"}


# -- blind pongs (the slow-consumer limit) -------------------------------------------


async def read_until_closed(
    client: Client, idle: float
) -> tuple[list[dict], int | None]:
    """Every frame until the server closes (code) or nothing comes for ``idle`` s (None)."""
    frames: list[dict] = []
    try:
        while True:
            frames.append(await client.recv(timeout=idle))
    except ConnectionClosed as closed:
        return frames, closed.rcvd.code if closed.rcvd else 1006
    except TimeoutError:
        return frames, None


BLIND_PONGS = [
    {"type": "rt.pong"},
    {"type": "rt.pong", "data": {}},
    {"type": "rt.pong", "data": {"nonce": "AAAAAAAAAAAAAAAA"}},
    {"type": "rt.pong", "id": "p", "data": {"nonce": None}},
]


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
@pytest.mark.parametrize("output", ["ping", "replay"])
async def test_blind_pongs_do_not_defeat_the_slow_consumer_limit(
    servers, e2e_db, module_redis, kind, output
):
    """A client that never reads asks for output (60 KB pongs to its pings, or a
    300 KB history replay per subscribe) and sends pongs to pings it never read,
    staying under RATE. Those pongs acknowledge nothing: once MAX_PENDING_BYTES
    (1 MiB) is outstanding the server closes it with 4507 and sends no more."""
    server = servers(kind)
    group = f"public.replay-{kind}-{output}"
    client = await Client.open(
        f"{server.url}/ws/", answer_pings=False, max_queue=1, compression=None
    )
    if output == "ping":
        request = {"type": "rt.ping", "data": {"pad": "p" * 60_000}}
        count, each = 24, 60_000
    else:
        django_shell(
            e2e_db,
            "import realtime\n"
            "for n in range(300):\n"
            f"    realtime.notify({group!r}, 'test.say', {{'text': 'h' * 990, 'n': n}})\n"
            "print(1)\n",
            env={"REDIS_URL": module_redis},
        )
        ack = await client.request("rt.subscribe", {"group": group})
        assert ack["data"]["seq"] == 300, ack
        request = {
            "type": "rt.subscribe",
            "data": {"group": group, "since": 0, "epoch": ack["data"]["epoch"]},
        }
        count, each = 8, 300_000
    try:
        for n in range(count):  # 2 frames per 60 ms: under RATE (20/s), BURST (40)
            await client.send(request)
            await client.send(BLIND_PONGS[n % len(BLIND_PONGS)])
            await asyncio.sleep(0.06)
    except ConnectionClosed:
        pass  # cut already (the server dropped it after closing)
    frames, code = await read_until_closed(client, idle=3)
    received = sum(len(json.dumps(frame)) for frame in frames)
    assert code in (status.WS_4507_SLOW_CONSUMER, 1006), (
        f"{kind}: still open after {received} bytes for a client that read nothing "
        f"of the {count * each} it asked for"
    )
    if code == status.WS_4507_SLOW_CONSUMER:
        assert frames[-1]["data"]["code"] == "slow_consumer"
    # Cut near the limit (1 MiB plus what was in flight), not after everything.
    assert received < count * each - 2 * each, received


async def test_pongs_echoing_the_nonce_keep_a_busy_reader_connected(server):
    """The other side: a reader that answers each ping with its nonce gets all of
    3 MB of pongs (three times MAX_PENDING_BYTES) and stays connected."""
    client = await Client.open(f"{server.url}/ws/", compression=None)
    for n in range(50):
        await client.send(
            {"type": "rt.ping", "id": f"big{n}", "data": {"pad": "p" * 60_000}}
        )
        reply = await client.recv(timeout=10)  # server pings are answered inside
        assert (reply["type"], reply.get("id")) == ("rt.pong", f"big{n}"), reply
        await asyncio.sleep(0.06)
    assert (await client.request("test.echo", {"text": "still"}))["type"] == "rt.ack"
    await client.close()


# -- tickets are bound to the credential that minted them ----------------------------

CSRF = "c" * 32


def ticket(port: int, *, session_key: str | None = None, token: str | None = None):
    headers = {}
    if session_key is not None:  # DRF's SessionAuthentication wants a CSRF token
        headers["Cookie"] = f"sessionid={session_key}; csrftoken={CSRF}"
        headers["X-CSRFToken"] = CSRF
    if token is not None:
        headers["Authorization"] = f"Token {token}"
    response = httpx.post(f"http://127.0.0.1:{port}/realtime/ticket/", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["ticket"]


async def test_ticket_sockets_follow_the_credential_that_minted_them(daphne, e2e_db):
    """A socket opened with a ticket is closed (4401) when the session or token that
    minted the ticket is revoked, like a socket opened with that credential."""
    server = daphne(REVALIDATE_INTERVAL=1)
    session_key, token = new_session(e2e_db, "heidi", token=True)
    by_session = ticket(server.port, session_key=session_key)
    unused = ticket(server.port, session_key=session_key)
    by_token = ticket(server.port, token=token)
    for minted in (by_session, by_token):
        # The credential travels encrypted: a ticket in a URL log does not show it.
        payload = json.dumps(signing.loads(minted, salt=TICKET_SALT))
        assert session_key not in payload and token not in payload
        assert session_key not in minted and token not in minted
    opened = {
        "cookie": await Client.open(
            f"{server.url}/ws/auth/",
            headers=cookie_headers(session_key),
            origin="http://allowed.example",
        ),
        "session ticket": await Client.open(
            f"{server.url}/ws/auth/?ticket={by_session}"
        ),
        "token ticket": await Client.open(f"{server.url}/ws/auth/?ticket={by_token}"),
    }
    for name, client in opened.items():
        assert client.welcome["data"]["user"]["username"] == "heidi", name
    django_shell(
        e2e_db,
        "from django.contrib.auth.models import User\n"
        "u = User.objects.get(username='heidi')\n"
        "u.set_password('changed'); u.save()\nprint(1)\n",
    )
    for name in ("cookie", "session ticket"):
        frames, code = await opened[name].closed_with(timeout=5)
        assert code == status.WS_4401_NOT_AUTHENTICATED, name
        assert frames[-1]["data"]["code"] == "not_authenticated", name
    # The token socket does not depend on the password, only on its token.
    token_socket = opened["token ticket"]
    assert (await token_socket.request("test.echo", {"text": "on"}))["type"] == "rt.ack"
    reply = await token_socket.request("rt.subscribe", {"group": "room.1"})
    assert reply["type"] == "rt.ack"
    django_shell(
        e2e_db,
        "from rest_framework.authtoken.models import Token\n"
        "Token.objects.filter(user__username='heidi').delete()\nprint(1)\n",
    )
    frames, code = await token_socket.closed_with(timeout=5)
    assert code == status.WS_4401_NOT_AUTHENTICATED
    # A ticket minted before the password change is refused once it changed.
    late = await Client.open(f"{server.url}/ws/auth/?ticket={unused}")
    assert late.welcome["data"]["code"] == "not_authenticated"
    assert (await late.closed_with())[1] == status.WS_4401_NOT_AUTHENTICATED


# -- ephemeral events relay validated data only --------------------------------------


async def test_typing_relays_only_validated_data(server, e2e_users):
    bob = await Client.open(f"{server.url}/ws/", headers=auth(e2e_users, "bob"))
    mallory = await Client.open(f"{server.url}/ws/", headers=auth(e2e_users, "mallory"))
    for client in (bob, mallory):
        assert (await client.request("rt.subscribe", {"group": "room.2"}))[
            "type"
        ] == "rt.ack"
    reply = await mallory.request(
        "test.typing",
        {
            "typing": "on",
            "html": "<img src=x onerror=alert(1)>",
            "username": "alice",
            "blob": "b" * 50_000,
            "user": {"id": e2e_users["alice"]["pk"], "username": "alice"},
        },
        group="room.2",
    )
    assert reply["type"] == "rt.ack", reply
    frame = await bob.next_event()
    while frame["type"].startswith("rt.presence."):
        frame = await bob.next_event()
    assert frame["type"] == "test.typing"
    assert frame["data"] == {
        "typing": True,
        "user": {"id": e2e_users["mallory"]["pk"], "username": "mallory"},
    }
    await bob.close()
    await mallory.close()


# -- deflate bombs --------------------------------------------------------------------


def peak_rss_kib(pid: int) -> int:
    """Peak resident set size of process ``pid`` in KiB (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for {pid}")


def documented_uvicorn_flags() -> list[str]:
    """The options of the uvicorn command in docs/deploying.md, without host, port
    and application (the fixture sets those)."""
    text = (ROOT / "docs" / "deploying.md").read_text()
    line = next(line for line in text.splitlines() if line.startswith("uvicorn --"))
    words, flags = shlex.split(line)[1:-1], []
    while words:
        word = words.pop(0)
        if word in ("--host", "--port"):
            words.pop(0)
        else:
            flags.append(word)
    return flags


BOMB = '{"type":"test.echo","data":{"text":"' + "a" * (16 * 1024 * 1024 - 64) + '"}}'


async def send_bomb(url: str) -> tuple[int, list[str]]:
    """Send one text message that deflates to ~16 KiB and inflates to 16 MiB;
    return the close code and the negotiated extensions."""
    async with connect(
        f"{url}/ws/", compression="deflate", open_timeout=10, ping_interval=None
    ) as ws:
        extensions = [type(e).__name__ for e in ws.protocol.extensions]
        await asyncio.wait_for(ws.recv(), 5)  # rt.welcome
        try:
            await ws.send(BOMB)
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed as closed:
            return (closed.rcvd.code if closed.rcvd else 1006), extensions
    raise AssertionError("unreachable")


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_deflate_bombs_do_not_inflate_past_max_frame_bytes(daphne, kind):
    """8 messages of 16 MiB that compress to ~16 KiB each (uvicorn negotiates
    permessage-deflate): with the documented flags the server stops inflating at
    MAX_FRAME_BYTES, so its peak memory barely moves."""
    if kind == "uvicorn":
        server = daphne(server="uvicorn", args=documented_uvicorn_flags())
    else:
        server = daphne()
    warm = await Client.open(f"{server.url}/ws/")
    assert (await warm.request("test.echo", {"text": "warm"}))["type"] == "rt.ack"
    before = peak_rss_kib(server.proc.pid)
    results = [await send_bomb(server.url) for _ in range(8)]
    grown = peak_rss_kib(server.proc.pid) - before
    print(f"{kind}: 8 deflate bombs, peak RSS +{grown} KiB, {results[0]}")
    if kind == "uvicorn":
        assert results[0][1] == ["PerMessageDeflate"]  # the bomb really was one
    for code, _ in results:
        assert code in (1009, 1006, status.WS_4413_FRAME_TOO_LARGE)
    assert grown < 16 * 1024, f"peak RSS grew {grown} KiB: a bomb was inflated"
    # The server is still serving.
    assert (await warm.request("test.echo", {"text": "after"}))["type"] == "rt.ack"
    await warm.close()


async def test_uvicorn_with_a_larger_message_limit_is_warned_about(daphne):
    """Without --ws-max-size, uvicorn accepts 16 MiB messages: each process logs
    realtime.W006 at its first WebSocket; with the documented flags it does not."""
    loose = daphne(server="uvicorn")
    tight = daphne(server="uvicorn", args=documented_uvicorn_flags())
    for started in (loose, tight):
        client = await Client.open(f"{started.url}/ws/")
        assert (await client.request("test.echo", {"text": "x"}))["type"] == "rt.ack"
        await client.close()
    deadline = time.monotonic() + 5
    while "realtime.W006" not in loose.log.read_text():
        assert time.monotonic() < deadline, loose.log.read_text()
        await asyncio.sleep(0.1)
    assert "--ws-max-size 65536" in loose.log.read_text()
    assert "realtime.W006" not in tight.log.read_text()


# -- cookies, origins, personal groups, group names ----------------------------------


async def test_odd_cookies_do_not_hide_the_session(server, e2e_db):
    """Cookies that Python's http.cookies stops at (a sibling subdomain can plant
    them) do not hide the session that Django's HTTP side sees."""
    session_key, _ = new_session(e2e_db, "ivan")
    for odd in ('prefs={"theme":"dark"}; ', 'banner="closed; ', "tz=Europe Paris; "):
        client = await Client.open(
            f"{server.url}/ws/auth/",
            headers=cookie_headers(session_key, extra=odd),
            origin="http://allowed.example",
        )
        assert client.welcome["data"]["user"] == {
            "id": client.welcome["data"]["user"]["id"],
            "username": "ivan",
        }, odd
        await client.close()


async def test_session_cookie_needs_an_allowed_origin(server, e2e_db):
    """Cookie auth only ever comes with a checked Origin: without one (not a browser)
    the cookie is ignored, so the socket is anonymous."""
    session_key, _ = new_session(e2e_db, "judy")
    bare = await Client.open(f"{server.url}/ws/", headers=cookie_headers(session_key))
    assert bare.welcome["data"]["user"] is None
    await bare.close()
    browser = await Client.open(
        f"{server.url}/ws/",
        headers=cookie_headers(session_key),
        origin="http://allowed.example",
    )
    assert browser.welcome["data"]["user"]["username"] == "judy"
    await browser.close()


@pytest.mark.django_db(transaction=True)
async def test_session_cookie_is_ignored_from_a_foreign_origin_without_websocket_app(
    django_user_model,
):
    """Defence in depth: a consumer routed without websocket_app (no origin check in
    front) still does not authenticate a cookie sent by a foreign page."""
    from asgiref.sync import sync_to_async
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from realtime.testing import RealtimeCommunicator
    from tests.testapp.consumers import EchoConsumer

    def login() -> str:
        user = django_user_model.objects.create_user("karl", password="pw")
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.save()
        return session.session_key

    key = await sync_to_async(login)()
    users = {}
    for origin in ("http://evil.example", "http://allowed.example"):
        comm = RealtimeCommunicator(
            EchoConsumer.as_asgi(),
            "/ws/",
            headers=[
                (b"origin", origin.encode()),
                (b"cookie", f"sessionid={key}".encode()),
            ],
        )
        connected, _ = await comm.connect()
        assert connected
        users[origin] = comm.welcome["data"]["user"]
        await comm.disconnect()
    assert users["http://evil.example"] is None
    assert users["http://allowed.example"]["username"] == "karl"


async def handshake_status(port: int, host: str, origin: str) -> int:
    """The HTTP status a WebSocket handshake with these Host and Origin gets."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            (
                f"GET /ws/ HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    return int(line.split()[1])


async def test_same_origin_page_on_an_ipv6_literal_is_accepted(daphne):
    """A page served from http://[::1]:<port> (Host ``[::1]:<port>``, in
    ALLOWED_HOSTS) may open the socket under the default same-origin rule."""
    server = daphne(ALLOWED_ORIGINS=None)
    host = f"[::1]:{server.port}"
    assert await handshake_status(server.port, host, f"http://{host}") == 101
    for foreign in (f"http://[::2]:{server.port}", "http://[::1]:1", "null"):
        assert await handshake_status(server.port, host, foreign) == 403, foreign


async def test_personal_groups_are_reserved_whatever_the_patterns(server, e2e_users):
    """``{feed}.{key}`` would admit ``user.<pk>``: personal groups are still joined by
    the server only, so another user's notify_user pushes never leak."""
    alice, own = e2e_users["alice"]["pk"], e2e_users["mallory"]["pk"]
    mallory = await Client.open(
        f"{server.url}/ws/feeds/", headers=auth(e2e_users, "mallory")
    )
    assert (await mallory.request("rt.subscribe", {"group": "news.today"}))[
        "type"
    ] == "rt.ack"
    for data in (
        {"group": f"user.{alice}"},
        {"group": f"user.{alice}", "since": 0},
        {"group": f"user.{own}"},
    ):
        reply = await mallory.request("rt.subscribe", data)
        assert reply["type"] == "rt.error", data
        assert reply["data"]["code"] == "forbidden", data
    await assert_nothing_leaked(server.url, mallory, [f"user.{alice}"])
    await mallory.close()


async def test_group_names_with_a_trailing_newline_are_refused(server, e2e_users):
    bob = await Client.open(f"{server.url}/ws/", headers=auth(e2e_users, "bob"))
    for group in ("public.lobby\n", "room.1\n", "public.lobby\n\n", "public.\nlobby"):
        for type_ in ("rt.subscribe", "rt.presence", "rt.unsubscribe"):
            reply = await bob.request(type_, {"group": group})
            assert reply["type"] == "rt.error", (type_, group)
            assert reply["data"]["code"] == "bad_envelope", (type_, group)
    await bob.close()


# -- presence churn --------------------------------------------------------------------


async def test_presence_churn_is_limited_per_connection(server, e2e_users):
    """Subscribe/unsubscribe toggled at 19 frames/s for 3 s: the other members get
    at most two presence events per allowed leave (PRESENCE_CHURN_BURST 5 +
    PRESENCE_CHURN_RATE 1/s), not 57; presence stays right."""
    group = "public.churn"
    bob = await Client.open(f"{server.url}/ws/", headers=auth(e2e_users, "bob"))
    assert (await bob.request("rt.subscribe", {"group": group}))["type"] == "rt.ack"
    mallory = await Client.open(f"{server.url}/ws/", headers=auth(e2e_users, "mallory"))
    started, refused, frames = time.monotonic(), 0, 57
    for n in range(frames):
        type_ = "rt.subscribe" if n % 2 == 0 else "rt.unsubscribe"
        reply = await mallory.request(type_, {"group": group})
        if reply["type"] == "rt.error":
            assert (type_, reply["data"]["code"]) == ("rt.unsubscribe", "rate_limited")
            refused += 1
        await asyncio.sleep(max(0.0, started + (n + 1) / 19 - time.monotonic()))
    elapsed = time.monotonic() - started
    await publish(server.url, group, "sentinel")
    seen = []
    while True:
        frame = await bob.next_event()
        if frame["type"] == "test.say":
            break
        seen.append(frame["type"])
    assert set(seen) <= {"rt.presence.join", "rt.presence.leave"}, seen
    allowed_leaves = 5 + 1.0 * elapsed
    assert len(seen) <= 2 * allowed_leaves + 1, f"{len(seen)} presence events"
    assert refused > 0
    # Mallory's last frame subscribed: both are listed, once each.
    state = await bob.request("rt.presence", {"group": group})
    assert sorted(m["username"] for m in state["data"]["members"]) == ["bob", "mallory"]
    print(f"presence churn: {frames} frames in {elapsed:.1f} s, {len(seen)} events")
    await bob.close()
    await mallory.close()


# -- slow handshakes (slowloris) and header bloat --------------------------------------


def server_flags(kind: str) -> list[str]:
    return documented_uvicorn_flags() if kind == "uvicorn" else []


async def hold_handshake(port: int, stop: asyncio.Event) -> str:
    """A WebSocket handshake that never ends: one more header line every second."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        n = 0
        while not stop.is_set():
            writer.write(f"X-Slow-{n}: 1\r\n".encode())
            await writer.drain()
            n += 1
            try:
                if await asyncio.wait_for(reader.read(100), 1.0) == b"":
                    return "closed"
                return "answered"
            except TimeoutError:
                continue
        return "open"
    except OSError:
        return "closed"
    finally:
        writer.close()


async def bloat_headers(port: int, total: int) -> str:
    """Send ``total`` bytes of 1 KB header lines as fast as the server takes them:
    "refused" if it answered or closed, "buffered" if it kept taking them."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for n in range(total // 1000):
            writer.write(f"X-Bloat-{n}: {'b' * 1000}\r\n".encode())
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(100), 2)
    except TimeoutError:
        return "buffered"
    except OSError:
        return "refused"  # reset while still sending
    finally:
        writer.close()
    return "refused" if answer == b"" or answer.startswith(b"HTTP/1.1 4") else "?"


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_slow_handshakes_do_not_starve_real_clients(daphne, kind):
    """200 handshakes that never finish (a header line a second for 5 s) held open
    at once: real clients still connect and get answers at once, the server's memory
    barely moves, and a handshake that keeps adding headers is refused (daphne and
    uvicorn's h11 stop at 16 KiB; uvicorn's default httptools parser never does,
    hence ``--http h11`` in docs/deploying.md).

    Neither server times out headers that never end (daphne: Twisted's 12 h idle
    timeout; uvicorn: none): the proxy in front must (docs/deploying.md)."""
    server = daphne(server=kind, args=server_flags(kind))
    warm = await Client.open(f"{server.url}/ws/")
    before = rss_kib(server.proc.pid)
    stop = asyncio.Event()
    held = [asyncio.create_task(hold_handshake(server.port, stop)) for _ in range(200)]
    await asyncio.sleep(1)
    latencies = []
    for _ in range(5):
        started = time.monotonic()
        client = await Client.open(f"{server.url}/ws/")
        assert (await client.request("test.echo", {"text": "hi"}))["type"] == "rt.ack"
        latencies.append(time.monotonic() - started)
        await client.close()
        await asyncio.sleep(0.5)
    bloated = await bloat_headers(server.port, 1024 * 1024)
    stop.set()
    outcomes = await asyncio.gather(*held)
    grown = rss_kib(server.proc.pid) - before
    print(
        f"{kind}: connect+ack {max(latencies):.3f} s max, {outcomes.count('open')} "
        f"held, 1 MB of headers {bloated}, RSS +{grown} KiB"
    )
    assert max(latencies) < 1.0, latencies
    assert outcomes.count("open") == 200  # not timed out by the server: see above
    assert bloated == "refused", "1 MB of headers taken in"
    assert grown < 20_000, f"RSS grew {grown} KiB"
    assert (await warm.request("test.echo", {"text": "after"}))["type"] == "rt.ack"
    await warm.close()


# -- very many distinct groups -----------------------------------------------------------


async def test_many_distinct_groups_leave_no_keys_and_do_not_slow_others(
    daphne, redis_url
):
    """Five connections each join MAX_SUBSCRIPTIONS (100) distinct groups with
    presence, then go: Redis holds a bounded number of keys per group meanwhile, a
    heartbeat client on the same process is unaffected, and every key those groups
    caused (layer memberships, presence, the sweep's index) is gone within a few
    presence leases (HEARTBEAT_INTERVAL 1 s: leases of 3 s)."""
    import redis

    server = daphne(redis_url=redis_url, HEARTBEAT_INTERVAL=1, RATE=100.0, BURST=200)
    store = redis.Redis.from_url(redis_url)
    probe = await Client.open(f"{server.url}/ws/")
    assert (await probe.request("test.echo", {"text": "warm"}))["type"] == "rt.ack"
    baseline = set(store.keys("*"))
    with Heartbeat(server.url, interval=0.1) as beat:
        attackers = [await Client.open(f"{server.url}/ws/") for _ in range(5)]

        async def join_all(index: int, client: Client) -> None:
            for n in range(100):
                group = f"public.many-{index}-{n}"
                reply = await client.request("rt.subscribe", {"group": group})
                assert reply["type"] == "rt.ack", reply

        started = time.monotonic()
        await asyncio.gather(*(join_all(i, c) for i, c in enumerate(attackers)))
        joined = time.monotonic() - started
        during = set(store.keys("*")) - baseline
        many = [key for key in during if b"many-" in key]
        for client in attackers:
            await client.close()
        figures = beat.stop()
    print(f"500 groups joined in {joined:.1f} s: {len(many)} keys, beat {figures}")
    assert len(many) <= 4 * 500, f"{len(many)} keys for 500 groups"
    assert figures["errors"] == [] and figures["missing"] == [], figures
    assert figures["p99"] < 0.5, figures
    deadline = time.monotonic() + 10
    while True:
        # A subscribed group's position (seq 0, its epoch) stays for HISTORY_TTL,
        # not longer, unless an event came.
        left = []
        for key in store.keys("*"):
            if b"many-" not in key:
                continue
            if key.startswith(b"rt:meta:") and 0 < store.ttl(key) <= 600:
                continue
            left.append(key)
        left += [
            member for member in store.zrange("rt:pgroups", 0, -1) if b"many-" in member
        ]
        if not left:
            break
        assert time.monotonic() < deadline, f"{len(left)} left: {left[:5]}"
        await asyncio.sleep(0.5)
    assert (await probe.request("test.echo", {"text": "after"}))["type"] == "rt.ack"
    await probe.close()
    store.close()
