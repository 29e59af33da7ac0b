"""The example project in headless Chromium: two people chat, get notified, watch the
dashboard, and keep chatting across a server restart.

The project runs as a newcomer runs it: ``manage.py demo --no-serve`` on a fresh
SQLite file, then ``daphne example_project.asgi:application`` on a free port (the
embedded default: in-memory layer, history and presence). Pages are loaded from
``http://127.0.0.1:<port>`` (an allowed host, so the WebSocket's Origin is accepted).
The screenshots in docs/screenshots/ are taken by this test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT, free_port, start_server

WAIT = 20_000  # ms
SCREENSHOTS = ROOT / "docs" / "screenshots"

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def example_env(db: Path, redis_url: str | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "DJANGO_DB": str(db),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


class ExampleServer:
    """``daphne example_project.asgi:application`` on a port that survives restarts."""

    def __init__(self, db: Path, log_dir: Path, redis_url: str | None = None) -> None:
        self.db, self.log_dir, self.redis_url = db, log_dir, redis_url
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        self.proc = start_server(
            "example_project.asgi:application",
            self.port,
            env=example_env(self.db, self.redis_url),
            log=self.log_dir / f"daphne-{self.port}-{self.starts}.log",
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def demo_db(tmp_path: Path) -> Path:
    db = tmp_path / "example.sqlite3"
    subprocess.run(
        [sys.executable, "manage.py", "demo", "--no-serve"],
        cwd=ROOT,
        env=example_env(db),
        check=True,
        capture_output=True,
    )
    return db


def django_shell(db: Path, code: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=example_env(db),
        check=True,
        capture_output=True,
    )


@pytest.fixture
def servers(tmp_path):
    started: list[ExampleServer] = []
    db = demo_db(tmp_path)

    def start(redis_url: str | None = None, *, port: int | None = None):
        server = ExampleServer(db, tmp_path, redis_url)
        if port is not None:
            server.port = port
        server.start()
        started.append(server)
        return server

    start.db = db
    yield start
    for server in started:
        server.stop()


@pytest.fixture
async def login(browser):
    """Log a demo user in, in a browser context of their own; returns the page."""
    contexts, errors = [], []

    async def login_(server: ExampleServer, name: str, path: str = "/chat/lobby/"):
        context = await browser.new_context(viewport={"width": 1100, "height": 720})
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(f"{name}: {error}"))
        await page.goto(f"{server.url}/accounts/login/?next={path}")
        await page.fill("#id_username", name)
        await page.fill("#id_password", f"{name}-password")
        await page.click("form.login button")
        await page.wait_for_url(f"{server.url}{path}")
        await connected(page)
        return page

    yield login_
    for context in contexts:
        await context.close()
    assert not errors, errors


async def connected(page) -> None:
    from playwright.async_api import expect

    await expect(page.locator("body")).to_have_attribute(
        "data-rt", "open", timeout=WAIT
    )


async def test_two_people_chat_notify_dashboard_and_restart(servers, login):
    from playwright.async_api import expect

    server = servers()
    alice = await login(server, "alice")
    bob = await login(server, "bob")

    # presence: each sees the other arrive
    await expect(alice.locator("#people li[data-user=bob]")).to_be_visible(timeout=WAIT)
    await expect(bob.locator("#people li[data-user=alice]")).to_be_visible(timeout=WAIT)
    # history from the database on page load
    await expect(alice.locator(".msg").first).to_contain_text("Welcome!")

    # a mention in the demo's welcome message waited for bob in the inbox
    await expect(bob.locator("#bell-count")).to_have_text("1", timeout=WAIT)

    # typing indicator
    await bob.fill("#text", "hey")
    await expect(alice.locator("#typing")).to_have_text("bob is typing…", timeout=WAIT)

    # a message with a mention: both see it; bob's bell rings (post_save signal)
    await alice.fill("#text", "Hello @bob, welcome to the lobby")
    await alice.press("#text", "Enter")
    for page in (alice, bob):
        await expect(page.locator(".msg").last).to_contain_text(
            "Hello @bob, welcome to the lobby", timeout=WAIT
        )
    await expect(bob.locator("#bell-count")).to_have_text("2", timeout=WAIT)
    await expect(alice.locator("#bell-count")).to_have_attribute("data-count", "0")

    # read receipts both ways
    await expect(alice.locator(".seen")).to_have_text("Seen by bob", timeout=WAIT)
    await bob.fill("#text", "Hi alice! Glad to be here.")
    await bob.press("#text", "Enter")
    await expect(alice.locator(".msg").last).to_contain_text("Glad to be here")
    await expect(alice.locator("#typing")).to_have_text("")
    await expect(bob.locator(".seen")).to_have_text("Seen by alice", timeout=WAIT)
    await alice.fill("#text", "Try the dashboard, it updates every second.")
    await alice.press("#text", "Enter")
    await expect(bob.locator(".msg").last).to_contain_text("dashboard")
    await expect(alice.locator(".seen")).to_have_text("Seen by bob", timeout=WAIT)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await alice.screenshot(path=str(SCREENSHOTS / "chat.png"))

    # bob opens the notifications page: the mention is in the inbox; mark it read
    await bob.goto(f"{server.url}/")
    await connected(bob)
    await expect(alice.locator("#people li[data-user=bob]")).to_have_count(
        0, timeout=WAIT
    )  # bob left the room
    notes = bob.locator(".note.unread")
    await expect(notes).to_have_count(2, timeout=WAIT)
    await expect(notes.first).to_contain_text("alice mentioned you in #lobby")
    await expect(notes.last).to_contain_text("carol mentioned you in #lobby")
    await notes.first.locator("button.mark-read").click()
    await expect(bob.locator("#bell-count")).to_have_text("1", timeout=WAIT)
    await bob.click("#read-all")
    await expect(bob.locator("#bell-count")).to_have_attribute(
        "data-count", "0", timeout=WAIT
    )
    await expect(bob.locator(".note.unread")).to_have_count(0)

    # a live mention while bob looks at the notifications page
    await alice.fill("#text", "@bob one more thing")
    await alice.press("#text", "Enter")
    await expect(bob.locator(".note.unread")).to_contain_text(
        "one more thing", timeout=WAIT
    )
    await expect(bob.locator("#bell-count")).to_have_text("1")

    # the dashboard: figures pushed once a second, drawn as a chart
    await bob.goto(f"{server.url}/dashboard/")
    await connected(bob)
    await bob.wait_for_function(
        "() => Number(document.body.dataset.ticks || 0) >= 3", timeout=WAIT
    )
    await expect(bob.locator("#f-connections")).to_have_text("2", timeout=WAIT)
    await expect(bob.locator("#f-processes")).to_have_text("1")
    await expect(bob.locator("#f-messages")).to_have_text("4")
    await alice.fill("#text", "Counting on the dashboard")
    await alice.press("#text", "Enter")
    await expect(bob.locator("#f-messages")).to_have_text("5", timeout=WAIT)
    await expect(bob.locator("#chart polyline[data-series=connections]")).to_have_count(
        1
    )
    await bob.wait_for_function(
        "() => Number(document.body.dataset.ticks) >= 10", timeout=WAIT
    )
    await bob.screenshot(path=str(SCREENSHOTS / "dashboard.png"))

    # restart the server: the page shows the banner, then everything it missed
    server.stop()
    await expect(alice.locator("#banner")).to_have_text(
        "Connection lost. Reconnecting…", timeout=WAIT
    )
    django_shell(
        servers.db,
        "from django.contrib.auth.models import User\n"
        "from example_project.chat.models import Message, Room\n"
        "Message.objects.create(room=Room.objects.get(slug='lobby'),"
        " author=User.objects.get(username='carol'), text='sent while you were away')",
    )
    await alice.fill("#text", "queued while offline")
    await alice.press("#text", "Enter")  # the client queues it
    server.start()
    await expect(alice.locator("#banner")).to_have_text(
        "Reconnected: you are up to date.", timeout=WAIT
    )
    await connected(alice)
    await expect(
        alice.locator(".msg", has_text="sent while you were away")
    ).to_have_count(1, timeout=WAIT)
    await expect(alice.locator(".msg").last).to_contain_text(
        "queued while offline", timeout=WAIT
    )
    texts = await alice.locator(".msg .bubble").all_inner_texts()
    assert texts[-2:] == ["sent while you were away", "queued while offline"]
    assert len(texts) == len(set(texts))  # nothing shown twice
    await connected(bob)
    await bob.wait_for_function(
        "() => document.getElementById('f-connections').textContent === '2'",
        timeout=WAIT,
    )
