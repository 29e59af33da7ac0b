"""realtime.js in headless Chromium against real daphne processes (and redis-server).

The test page and realtime.js are served by daphne (tests/urls.py). The page is opened
as ``http://allowed.example/...``, the origin tests/settings.py allows, and Playwright
forwards those HTTP requests to the daphne under test; the WebSocket goes straight to
``ws://127.0.0.1:<port>`` and carries that ``Origin``, as a page of a site whose
realtime endpoint lives on another host would.
"""

from __future__ import annotations

import signal

import pytest

PAGE_ORIGIN = "http://allowed.example"
WAIT = 20_000  # ms

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture
async def open_page(browser):
    """Open the test page "from allowed.example", served by ``server``."""
    contexts = []
    console: list[str] = []

    async def open_(server):
        context = await browser.new_context()
        contexts.append(context)

        async def forward(route):
            url = route.request.url.replace(
                PAGE_ORIGIN, f"http://127.0.0.1:{server.port}", 1
            )
            try:
                response = await route.fetch(url=url, max_redirects=0, timeout=5_000)
            except Exception:
                # The server is down (or frozen): the page sees a network error.
                await route.abort("connectionrefused")
                return
            await route.fulfill(response=response)

        await context.route(f"{PAGE_ORIGIN}/**", forward)
        page = await context.new_page()
        page.on("console", lambda message: console.append(message.text))
        page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
        await page.goto(f"{PAGE_ORIGIN}/rt-test/browser.html")
        await page.wait_for_function("() => window.rtReady === true", timeout=WAIT)
        return page

    yield open_
    for context in contexts:
        await context.close()
    assert not [line for line in console if line.startswith("pageerror")], console


async def wait(page, expression: str, arg=None, timeout: int = WAIT) -> None:
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    try:
        await page.wait_for_function(expression, arg=arg, timeout=timeout)
    except PlaywrightTimeout:
        records = await page.evaluate(
            "() => Object.fromEntries(Object.entries(rt.clients).map("
            "([n, c]) => [n, {state: c.client.state, ...c.rec}]))"
        )
        pytest.fail(f"timed out waiting for {expression}\nclients: {records}")


async def make(page, name: str, url: str, **options) -> None:
    await page.evaluate("([n, u, o]) => rt.make(n, u, o)", [name, url, options])


def ticket_options(token: str) -> dict:
    return {
        "ticketUrl": "/realtime/ticket/",
        "ticketHeaders": {"Authorization": f"Token {token}"},
    }


async def request(page, name: str, type_: str, data: dict, **options) -> dict:
    return await page.evaluate(
        "([n, t, d, o]) => rt.request(n, t, d, o)", [name, type_, data, options]
    )


async def events(page, name: str, group: str) -> list[dict]:
    return await page.evaluate("([n, g]) => rt.clients[n].rec.events[g]", [name, group])


async def test_ticket_connect_request_subscribe(daphne, e2e_users, open_page):
    server = daphne()
    page = await open_page(server)
    url = f"{server.url}/ws/auth/"
    await make(page, "alice", url, **ticket_options(e2e_users["alice"]["token"]))
    await make(page, "bob", url, **ticket_options(e2e_users["bob"]["token"]))
    await wait(
        page, "() => ['alice', 'bob'].every(n => rt.clients[n].client.state === 'open')"
    )
    assert await page.evaluate("() => rt.clients.alice.client.user.username") == "alice"
    assert (
        await page.evaluate("() => rt.clients.alice.client.welcome.auth_required")
        is False
    )

    # ack / error promises
    assert await request(page, "alice", "test.echo", {"text": "hi"}) == {
        "ok": {"text": "hi", "user": "alice"}
    }
    invalid = await request(page, "alice", "test.echo", {})
    assert invalid["error"] == "invalid"
    assert invalid["isRealtimeError"] is True
    assert "text" in invalid["errors"]
    assert (await request(page, "bob", "test.secret", {}))["error"] == "forbidden"
    assert (await request(page, "alice", "nope.nope", {}))["error"] == "unknown_type"

    # subscribe, live events in order to both subscribers, presence
    ack = await page.evaluate("() => rt.track('alice', 'room.2')")
    assert ack["group"] == "room.2" and ack["recovered"] is True
    assert (await page.evaluate("() => rt.track('bob', 'room.2')"))["group"] == "room.2"
    await wait(
        page,
        "() => rt.clients.alice.rec.presence.some(p => p[0] === 'join' && p[2] === 'bob')",
    )
    members = await page.evaluate("() => rt.clients.alice.client.presence('room.2')")
    assert sorted(m["username"] for m in members["members"]) == ["alice", "bob"]
    for n in (1, 2, 3):
        reply = await request(
            page, "bob", "test.say", {"group": "room.2", "text": f"m{n}", "n": n}
        )
        assert reply["ok"]["seq"] == ack["seq"] + n
    await wait(page, "() => rt.clients.alice.rec.events['room.2'].length === 3")
    await wait(page, "() => rt.clients.bob.rec.events['room.2'].length === 3")
    assert [e["n"] for e in await events(page, "alice", "room.2")] == [1, 2, 3]
    assert await events(page, "alice", "room.2") == await events(page, "bob", "room.2")
    assert await page.evaluate("() => rt.track('bob', 'room.secret')") == {
        "error": "forbidden"
    }
    # A permanent refusal ends the subscription: no retry within three times the
    # first backoff's upper bound (reconnectDelay, 500 ms, with full jitter).
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    with pytest.raises(PlaywrightTimeout):
        await page.wait_for_function(
            "() => rt.clients.bob.rec.retries.length > 0", timeout=1500
        )


async def test_subscribe_retried_after_server_error(daphne, open_page):
    """A subscribe answered ``server_error`` (the permission check raised in the real
    server) is retried with backoff; the retry succeeds and events flow."""
    server = daphne()
    page = await open_page(server)
    await make(
        page, "c", f"{server.url}/ws/", reconnectDelay=100, maxReconnectDelay=500
    )
    await wait(page, "() => rt.clients.c.client.state === 'open'")
    ack = await page.evaluate("() => rt.track('c', 'flaky.1')")
    assert ack == {
        "group": "flaky.1",
        "seq": 0,
        "epoch": ack["epoch"],
        "recovered": True,
    }
    assert isinstance(ack["epoch"], str) and ack["epoch"]
    rec = await page.evaluate("() => rt.clients.c.rec")
    assert rec["retries"] == [
        {"group": "flaky.1", "code": "server_error", "attempt": 1}
    ]
    assert rec["subscriptionErrors"] == []
    assert rec["states"] == ["connecting", "open"]  # retried on the same connection
    for n in (1, 2):
        reply = await request(
            page, "c", "test.say", {"group": "flaky.1", "text": "x", "n": n}
        )
        assert reply == {"ok": {"seq": n}}, reply
    await wait(page, "() => rt.clients.c.rec.events['flaky.1'].length === 2")
    assert await events(page, "c", "flaky.1") == [
        {"seq": 1, "n": 1},
        {"seq": 2, "n": 2},
    ]
    assert "transient failure subscribing to flaky.1" in server.log.read_text()


async def test_reconnect_recover_and_flush_after_restart(
    daphne, redis_url, e2e_users, open_page
):
    """Server A dies; B keeps publishing; A comes back on its port: every missed event
    arrives exactly once, in order, then the frames queued while offline."""
    a = daphne(redis_url=redis_url)
    b = daphne(redis_url=redis_url)
    page = await open_page(a)
    group = "room.1"
    await make(
        page,
        "c",
        f"{a.url}/ws/auth/",
        reconnectDelay=100,
        maxReconnectDelay=500,
        **ticket_options(e2e_users["alice"]["token"]),
    )
    await make(page, "p", f"{b.url}/ws/auth/", token=e2e_users["bob"]["token"])
    await wait(
        page, "() => ['c', 'p'].every(n => rt.clients[n].client.state === 'open')"
    )
    assert (await page.evaluate(f"() => rt.track('c', '{group}')"))["seq"] == 0

    async def say(n: int) -> None:
        reply = await request(
            page, "p", "test.say", {"group": group, "text": "x", "n": n}
        )
        assert "ok" in reply, reply

    await say(1)
    await say(2)
    await wait(page, f"() => rt.clients.c.rec.events['{group}'].length === 2")

    a.kill()
    await wait(page, "() => rt.clients.c.client.state !== 'open'")
    assert (
        await page.evaluate(
            f"""() => rt.clients.c.client.send('test.say', {{group: '{group}', text: 'q', n: 100}})"""
        )
        is False
    )
    await page.evaluate(
        "() => rt.startRequest('q', 'c', 'test.echo', {text: 'queued'}, {timeout: 30000})"
    )
    assert await page.evaluate("() => rt.clients.c.client.queued") == 2
    for n in (3, 4, 5):
        await say(n)

    daphne(redis_url=redis_url, port=a.port)
    await wait(
        page, f"() => rt.clients.c.rec.events['{group}'].length === 6", timeout=30_000
    )
    assert await page.evaluate("() => rt.pending.q") == {
        "ok": {"text": "queued", "user": "alice"}
    }
    await say(6)
    await wait(page, f"() => rt.clients.c.rec.events['{group}'].length === 7")
    got = await events(page, "c", group)
    assert [e["n"] for e in got] == [1, 2, 3, 4, 5, 100, 6]
    assert [e["seq"] for e in got] == [1, 2, 3, 4, 5, 6, 7]
    assert await page.evaluate("() => rt.clients.c.rec.recoveryFailed") == []
    states = await page.evaluate("() => rt.clients.c.rec.states")
    assert states[:3] == ["connecting", "open", "reconnecting"]
    assert states[-1] == "open"


async def test_silent_server_detected_by_heartbeat(daphne, open_page):
    server = daphne(HEARTBEAT_INTERVAL=1, HEARTBEAT_TIMEOUT=3)
    page = await open_page(server)
    await make(
        page,
        "c",
        f"{server.url}/ws/",
        heartbeatGrace=2000,
        connectTimeout=2000,
        reconnectDelay=100,
        maxReconnectDelay=500,
    )
    await wait(page, "() => rt.clients.c.client.state === 'open'")
    assert await page.evaluate("() => rt.clients.c.client.welcome.heartbeat") == 1
    await page.evaluate("() => rt.track('c', 'public.hb')")
    server.proc.send_signal(signal.SIGSTOP)
    try:
        await wait(page, "() => rt.clients.c.rec.closed.some(c => c.code === 4408)")
    finally:
        server.proc.send_signal(signal.SIGCONT)
    await wait(page, "() => rt.clients.c.client.state === 'open'")
    reply = await request(
        page, "c", "test.say", {"group": "public.hb", "text": "x", "n": 1}
    )
    assert "ok" in reply, reply
    await wait(page, "() => rt.clients.c.rec.events['public.hb'].length === 1")


async def test_no_reconnect_on_4403(daphne, e2e_users, open_page):
    server = daphne()
    page = await open_page(server)
    await make(
        page,
        "bob",
        f"{server.url}/ws/staff/",
        reconnectDelay=50,
        maxReconnectDelay=100,
        **ticket_options(e2e_users["bob"]["token"]),
    )
    await wait(page, "() => rt.clients.bob.client.state === 'closed'")
    closed = await page.evaluate("() => rt.clients.bob.rec.closed")
    assert closed == [{"code": 4403, "willRetry": False, "error": "forbidden"}]
    # The welcome came first (the handshake's ticket was valid); on_connect refused.
    # Well past the largest backoff delay there is still only the one attempt.
    await page.wait_for_timeout(500)
    states = await page.evaluate("() => rt.clients.bob.rec.states")
    assert states == ["connecting", "open", "closed"]
