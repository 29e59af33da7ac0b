"""Shared documents in headless Chromium: the example project's Notes page.

Two users edit one note on two server processes (Redis between them): they type at
once, one goes offline and keeps typing, a server and Redis restart meanwhile, and both
browsers end with the same text as the database. The README's screenshot of the
Notes page is taken here.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT, free_port, start_server

WAIT = 20_000  # ms
SCREENSHOTS = ROOT / "docs" / "screenshots"

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def example_env(db: Path, redis_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "DJANGO_DB": str(db),
        "PYTHONUNBUFFERED": "1",
        "REDIS_URL": redis_url,
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def manage(db: Path, redis_url: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=example_env(db, redis_url),
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout


class Server:
    """``daphne example_project.asgi:application`` on a port that survives restarts."""

    def __init__(self, db: Path, log_dir: Path, redis_url: str) -> None:
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


async def go_offline(page) -> None:
    """The page's client closes its socket (the server sees the close, as when a
    browser notices its network is gone) and stays closed until ``come_back``."""
    await page.evaluate("window.rtClient.close()")


async def come_back(page) -> None:
    await page.evaluate("window.rtClient.connect()")


@pytest.fixture
def example(tmp_path, own_redis):
    db = tmp_path / "example.sqlite3"
    manage(db, own_redis.url, "demo", "--no-serve")
    servers = [Server(db, tmp_path, own_redis.url) for _ in range(2)]
    for server in servers:
        server.start()
    yield db, servers, own_redis
    for server in servers:
        server.stop()


async def open_note(browser, server, name, errors, slug="meeting"):
    context = await browser.new_context(viewport={"width": 1100, "height": 640})
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(f"{name}: {error}"))
    path = f"/notes/{slug}/"
    await page.goto(f"{server.url}/accounts/login/?next={path}")
    await page.fill("#id_username", name)
    await page.fill("#id_password", f"{name}-password")
    await page.click("form.login button")
    await page.wait_for_url(f"{server.url}{path}")
    await synced(page)
    return context, page


async def synced(page) -> None:
    from playwright.async_api import expect

    await expect(page.locator("body")).to_have_attribute(
        "data-doc", "synced", timeout=WAIT
    )


async def text_of(page) -> str:
    return await page.evaluate("window.notes.text.toString()")


async def same_text(pages, db, redis_url, *, contains) -> str:
    """Wait until every page shows the same text, holding each of ``contains``;
    return it once the database holds it too."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT / 1000
    while True:
        texts = [await text_of(page) for page in pages]
        if len(set(texts)) == 1 and all(part in texts[0] for part in contains):
            break
        assert loop.time() < deadline, f"texts differ: {texts!r}"
        await asyncio.sleep(0.1)
    # Every update is stored before it is relayed: the database has it already.
    stored = (
        manage(
            db,
            redis_url,
            "shell",
            "-c",
            "import json\n"
            "from example_project.notes.models import Note\n"
            "print(json.dumps(Note.objects.get(slug='meeting').body))",
        )
        .strip()
        .splitlines()[-1]
    )
    assert json.loads(stored) == texts[0]
    return texts[0]


async def test_two_users_edit_live_offline_and_across_restarts(browser, example):
    from playwright.async_api import expect

    db, (first, second), redis = example
    errors: list[str] = []
    alice_ctx, alice = await open_note(browser, first, "alice", errors)
    bob_ctx, bob = await open_note(browser, second, "bob", errors)

    # Each sees the other arrive (presence of the document's group).
    await expect(alice.locator("#here [data-user=bob]")).to_be_visible(timeout=WAIT)
    await expect(bob.locator("#here [data-user=alice]")).to_be_visible(timeout=WAIT)

    # Both type at once, on two processes.
    await alice.click(".cm-content")
    await bob.click(".cm-content")
    await asyncio.gather(
        alice.keyboard.type("Alice writes the agenda. ", delay=15),
        bob.keyboard.type("Bob adds the minutes. ", delay=15),
    )
    await same_text(
        [alice, bob],
        db,
        redis.url,
        contains=["Alice writes the agenda. ", "Bob adds the minutes. "],
    )
    # Coloured cursors, named by the server: alice sees bob's caret and his name.
    caret = alice.locator(".cm-ySelectionCaret")
    await expect(caret).to_have_count(1, timeout=WAIT)
    await expect(alice.locator(".cm-ySelectionInfo")).to_have_text("bob")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await bob.keyboard.type("Cursors show who types where.", delay=10)
    await alice.wait_for_function(
        "() => window.notes.text.toString().includes('who types where.')",
        timeout=WAIT,
    )
    await alice.screenshot(path=str(SCREENSHOTS / "notes.png"))

    # Bob goes offline and keeps typing in the same paragraph as alice.
    await go_offline(bob)
    await expect(bob.locator("body")).to_have_attribute(
        "data-doc", "offline", timeout=WAIT
    )
    # His cursor leaves alice's page with him; he sees no stale cursors either.
    await expect(alice.locator(".cm-ySelectionCaret")).to_have_count(0, timeout=WAIT)
    await expect(bob.locator(".cm-ySelectionCaret")).to_have_count(0)
    await bob.keyboard.press("Home")
    await bob.keyboard.type("[bob offline] ", delay=10)
    await alice.keyboard.press("End")
    await alice.keyboard.type(" [alice online]", delay=10)

    # Alice's server and Redis restart meanwhile: nothing typed is lost.
    first.stop()
    redis.stop()
    redis.start()
    first.start()
    await synced(alice)
    await alice.keyboard.type(" [after restart]", delay=10)

    # Bob comes back: what he typed offline reaches alice, what she typed reaches him.
    await come_back(bob)
    await synced(bob)
    final = await same_text(
        [alice, bob],
        db,
        redis.url,
        contains=["[bob offline] ", " [alice online]", " [after restart]"],
    )
    assert "Alice writes the agenda. " in final and "Bob adds the minutes. " in final
    await alice_ctx.close()
    await bob_ctx.close()
    assert not errors, errors


async def test_a_viewer_reads_live_but_cannot_edit(browser, example):
    from playwright.async_api import expect

    _, (first, second), _ = example
    errors: list[str] = []
    alice_ctx, alice = await open_note(browser, first, "alice", errors, slug="release")
    carol_ctx, carol = await open_note(browser, second, "carol", errors, slug="release")
    await expect(carol.locator("#doc-status")).to_have_text("read-only")
    await alice.click(".cm-content")
    await alice.keyboard.type("Version 2 is out.", delay=10)
    await carol.wait_for_function(
        "() => window.notes.text.toString() === 'Version 2 is out.'", timeout=WAIT
    )
    # The editor refuses input; a forged update from the console is refused too.
    await carol.click(".cm-content")
    await carol.keyboard.type("vandalism")
    code = await carol.evaluate(
        """async () => {
            const { toBase64, encodeSync } = await import("/static/realtime/collab.js");
            const Y = await import("yjs");
            const doc = new Y.Doc();
            doc.getText("body").insert(0, "forged");
            const m = toBase64(encodeSync(2, Y.encodeStateAsUpdate(doc)));
            try {
                await window.rtClient.request("doc.sync", { group: "doc.release", m });
                return "accepted";
            } catch (error) {
                return error.code;
            }
        }"""
    )
    assert code == "forbidden"
    assert await text_of(carol) == "Version 2 is out."
    assert await text_of(alice) == "Version 2 is out."
    await alice_ctx.close()
    await carol_ctx.close()
    assert not errors, errors
