"""The example project as a newcomer meets it: ``manage.py demo``, plain daphne
serving static files (WhiteNoise), and Django's checks with DEBUG off."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest

from tests.e2e.test_example_browser import example_env
from tests.support.processes import ROOT, free_port, start_server


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_demo_no_serve_creates_and_prints_users(tmp_path):
    env = example_env(tmp_path / "demo.sqlite3")
    out = run(["manage.py", "demo", "--no-serve"], env).stdout
    for name in ("alice", "bob", "carol"):
        assert f"{name} / {name}-password" in out
    assert "in-memory" in out
    # idempotent: a second run resets passwords, creates nothing twice
    run(["manage.py", "demo", "--no-serve"], env)
    code = (
        "from django.contrib.auth import authenticate\n"
        "from example_project.chat.models import Message, Room\n"
        "assert authenticate(username='bob', password='bob-password')\n"
        "print(Room.objects.count(), Message.objects.count())"
    )
    out = run(["manage.py", "shell", "-c", code], env).stdout
    assert out.splitlines()[-1].split() == ["3", "1"]


@pytest.mark.e2e
def test_plain_daphne_serves_static_files_and_pages(tmp_path):
    env = example_env(tmp_path / "demo.sqlite3")
    env["DJANGO_DEBUG"] = "0"
    run(["manage.py", "demo", "--no-serve"], env)
    port = free_port()
    proc = start_server(
        "example_project.asgi:application", port, env=env, log=tmp_path / "daphne.log"
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for path, marker in [
            ("/static/realtime/realtime.js", b"export class RealtimeClient"),
            ("/static/chat/app.js", b"new RealtimeClient"),
            ("/accounts/login/", b"Log in"),
        ]:
            with urllib.request.urlopen(base + path, timeout=10) as response:
                assert response.status == 200, path
                assert marker in response.read(), path
        # pages need a login
        with urllib.request.urlopen(base + "/chat/", timeout=10) as response:
            assert response.url.startswith(base + "/accounts/login/")
    finally:
        proc.terminate()
        proc.wait(10)


def test_django_checks_pass_with_debug_off(tmp_path):
    env = example_env(tmp_path / "check.sqlite3")
    env["DJANGO_DEBUG"] = "0"
    # The embedded default in production gets exactly one warning: use Redis.
    done = run(["manage.py", "check"], env)
    assert "realtime.W002" in done.stderr + done.stdout
    assert "1 issue" in done.stderr + done.stdout
    # With Redis configured (checks do not connect): not even a warning.
    env["REDIS_URL"] = "redis://127.0.0.1:1/0"
    done = run(["manage.py", "check", "--fail-level", "WARNING"], env)
    assert "no issues" in done.stdout
    run(["manage.py", "makemigrations", "--check", "--dry-run"], env)


@pytest.mark.e2e
async def test_follow_room_prints_messages_posted_by_others(tmp_path):
    """``manage.py follow_room`` (the Python client in the example project) prints a
    message another user posts over the WebSocket."""
    import asyncio

    from realtime.client import RealtimeClient

    env = example_env(tmp_path / "follow.sqlite3")
    run(["manage.py", "demo", "--no-serve"], env)
    out = run(["manage.py", "drf_create_token", "alice"], env).stdout
    alice_token = out.split()[2]
    port = free_port()
    server = start_server(
        "example_project.asgi:application", port, env=env, log=tmp_path / "daphne.log"
    )
    url = f"ws://127.0.0.1:{port}/ws/"
    command = ["manage.py", "follow_room", "lobby", "--user", "bob", "--url", url]
    follower = subprocess.Popen(
        [sys.executable, *command, "--count", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert follower.stdout is not None
        first = await asyncio.wait_for(asyncio.to_thread(follower.stdout.readline), 30)
        assert first.strip() == "Following #lobby as bob", first

        async def post() -> None:
            async with RealtimeClient(url, token=alice_token) as alice:
                await alice.subscribe("room.lobby")
                await alice.request("chat.message", {"room": "lobby", "text": "hi bob"})

        try:
            await asyncio.wait_for(post(), 60)
        except TimeoutError:
            log = (tmp_path / "daphne.log").read_text(errors="replace")
            pytest.fail(f"alice could not post within 60 s; server log:\n{log[-4000:]}")
        rest = await asyncio.wait_for(asyncio.to_thread(follower.stdout.read), 30)
        assert rest.strip() == "[lobby] alice: hi bob", rest
        assert follower.wait(10) == 0
    finally:
        follower.kill()
        follower.wait()
        server.terminate()
        server.wait(10)
