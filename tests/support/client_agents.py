"""The three clients of the shared scenarios, each behind the same small agent.

An agent runs one client and answers ``await agent.call(op, **args)``:

- ``connect(url, auth=None)``: ``{"user"}``, or ``{"error", "closeCode"}`` when the
  server ended the client for good; ``auth`` is ``{"kind": "ticket", "ticketUrl",
  "token"}`` (a ticket fetched before every connect) or ``{"kind": "token", "token"}``
  (sent as ``rt.auth``, the first message);
- ``subscribe(group, since=None, epoch=None)``: ``{"ack"}`` or ``{"error": code}``;
- ``request(type, data)``: ``{"ok": data}`` or ``{"error": code}``;
- ``snapshot()``: ``{"state", "connections", "user", "events": {group: [[seq, n]]},
  "failures": [{"group", "since", "seq", "epoch", "reason"}]}``;
- ``close()``.

:class:`PythonAgent` drives ``realtime.client`` in the test's event loop; the Node and
Chromium agents drive ``realtime.js`` through tests/js/agent.mjs.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from realtime.client import ClientClosed, ClientError, RealtimeClient, RecoveryFailed
from tests.support.browser import CHROMIUM_ARGS
from tests.support.processes import ROOT

JS = ROOT / "tests" / "js"
STATIC = ROOT / "realtime" / "static"
CALL_TIMEOUT = 60  # s: no single operation waits longer (connect retries are faster)


class PythonAgent:
    name = "python"

    def __init__(self) -> None:
        self.client: RealtimeClient | None = None
        self.events: dict[str, list[list[int]]] = {}
        self.failures: list[dict[str, Any]] = []
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        pass

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        return await asyncio.wait_for(getattr(self, f"_{op}")(**args), CALL_TIMEOUT)

    async def _connect(self, url: str, auth: dict | None = None) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if auth and auth["kind"] == "ticket":
            options["ticket_url"] = auth["ticketUrl"]
            options["ticket_headers"] = {"Authorization": f"Token {auth['token']}"}
        elif auth and auth["kind"] == "token":
            options["token"] = auth["token"]
        self.client = RealtimeClient(
            url,
            reconnect_delay=0.1,
            max_reconnect_delay=1.0,
            connect_timeout=5,
            **options,
        )
        try:
            await self.client.connect()
        except ClientClosed as closed:
            return {"error": closed.code, "closeCode": closed.close_code}
        user = self.client.user
        return {"user": user["username"] if user else None}

    async def _subscribe(
        self, group: str, since: int | None = None, epoch: str | None = None
    ) -> dict[str, Any]:
        assert self.client is not None
        events = self.events[group] = []
        try:
            sub = await self.client.subscribe(group, since=since, epoch=epoch)
        except ClientError as error:
            return {"error": error.code}

        async def read() -> None:
            while True:
                try:
                    event = await sub.get()
                except RecoveryFailed as failure:
                    self.failures.append(
                        {
                            "group": failure.group,
                            "since": failure.since,
                            "seq": failure.seq,
                            "epoch": failure.epoch,
                            "reason": failure.reason,
                        }
                    )
                    continue
                except (StopAsyncIteration, ClientError):
                    return
                events.append([event.seq, event.data["n"]])

        self._readers.append(asyncio.create_task(read()))
        ack = sub.ack or {}
        return {"ack": {k: ack.get(k) for k in ("group", "seq", "epoch", "recovered")}}

    async def _request(self, type: str, data: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        try:
            return {"ok": await self.client.request(type, data)}
        except ClientError as error:
            return {"error": error.code}

    async def _snapshot(self) -> dict[str, Any]:
        assert self.client is not None
        user = self.client.user
        return {
            "state": self.client.state,
            "connections": self.client.connections,
            "user": user["username"] if user else None,
            "events": {group: list(events) for group, events in self.events.items()},
            "failures": list(self.failures),
        }

    async def _close(self) -> dict[str, Any]:
        if self.client is not None:
            await self.client.close()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        return {}

    async def stop(self) -> None:
        await self._close()


def node_command(*args: str) -> list[str]:
    """``node`` with WebSocket on (Node 20 and 21 have it behind a flag; older
    versions get tests/js/mini_ws.mjs through tests/js/harness.mjs)."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed (apt-get install nodejs)")
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True
    ).stdout
    major = int(version.strip().lstrip("v").split(".")[0])
    return [node, *(["--experimental-websocket"] if major in (20, 21) else []), *args]


class LineAgent:
    """A client in another process: ``command`` reads one JSON call a line on stdin,
    ``{"id", "op", "args"}``, and answers each with one line on stdout, ``{"id",
    "result"}`` (or ``{"id", "error"}`` when the operation itself broke); it exits
    when stdin closes. Any language can implement it (tests/js/agent_node.mjs)."""

    name = "external"

    def __init__(self, command: list[str], log: Path) -> None:
        self.command, self.log = command, log
        self.proc: asyncio.subprocess.Process | None = None
        self._ids = 0

    async def start(self) -> None:
        self._stderr = self.log.open("w")
        self.proc = await asyncio.create_subprocess_exec(
            *self.command,
            cwd=ROOT,
            env=dict(os.environ),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr,
        )

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self._ids += 1
        line = json.dumps({"id": self._ids, "op": op, "args": args}) + "\n"
        self.proc.stdin.write(line.encode())
        await self.proc.stdin.drain()
        while True:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), CALL_TIMEOUT)
            if not raw:
                tail = self.log.read_text()[-3000:]
                raise RuntimeError(f"{self.name} agent exited: {tail}")
            answer = json.loads(raw)
            if answer.get("id") == self._ids:
                break
        if "error" in answer:
            raise RuntimeError(f"{self.name} agent failed {op}: {answer['error']}")
        return answer["result"]

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._stderr.close()


class NodeAgent(LineAgent):
    """realtime.js under Node: tests/js/agent_node.mjs."""

    name = "node"

    def __init__(self, log: Path) -> None:
        super().__init__(node_command(str(JS / "agent_node.mjs")), log)


PAGE_ORIGIN = "http://allowed.example"  # an origin tests/settings.py allows
AGENT_PAGE = """<!doctype html>
<meta charset="utf-8">
<script type="module">
  import { RealtimeClient } from "/rt-static/realtime/realtime.js";
  import { makeAgent } from "/rt-test/agent.mjs";
  window.agent = makeAgent(RealtimeClient);
  window.agentReady = true;
</script>
"""


class ChromiumAgent:
    """realtime.js in a headless Chromium page "of allowed.example".

    The page and the scripts come from disk (so they load while the server is down);
    other requests of the page (the ticket endpoint) go to the server's port.
    """

    name = "chromium"

    def __init__(self, http_port: Callable[[], int]) -> None:
        self.http_port = http_port  # the server's, once started
        self.console: list[str] = []

    async def start(self) -> None:
        from playwright.async_api import async_playwright  # only browser runs need it

        self.playwright = await async_playwright().start()
        self.browser = await self.playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        self.context = await self.browser.new_context()
        await self.context.route(f"{PAGE_ORIGIN}/**", self._serve)
        self.page = await self.context.new_page()
        self.page.on("console", lambda message: self.console.append(message.text))
        self.page.on(
            "pageerror", lambda error: self.console.append(f"pageerror: {error}")
        )
        await self.page.goto(f"{PAGE_ORIGIN}/agent.html")
        await self.page.wait_for_function("() => window.agentReady === true")

    async def _serve(self, route: Any) -> None:
        path = route.request.url[len(PAGE_ORIGIN) :].split("?")[0]
        if path == "/agent.html":
            await route.fulfill(body=AGENT_PAGE, content_type="text/html")
        elif path.startswith(("/rt-static/", "/rt-test/")):
            root = STATIC if path.startswith("/rt-static/") else JS
            file = root / path.split("/", 2)[2]
            await route.fulfill(path=str(file), content_type="text/javascript")
        else:
            target = route.request.url[len(PAGE_ORIGIN) :]
            url = f"http://127.0.0.1:{self.http_port()}{target}"
            try:
                response = await route.fetch(url=url, max_redirects=0, timeout=5_000)
            except Exception:
                await route.abort("connectionrefused")  # the server is down
                return
            await route.fulfill(response=response)

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        auth = args.get("auth")
        if auth and "ticketUrl" in auth:
            # The page asks its own origin (routed to the server): no CORS involved.
            path = "/" + auth["ticketUrl"].split("/", 3)[3]
            args = {**args, "auth": {**auth, "ticketUrl": path}}
        return await asyncio.wait_for(
            self.page.evaluate("([op, args]) => agent.call(op, args)", [op, args]),
            CALL_TIMEOUT,
        )

    async def stop(self) -> None:
        await self.context.close()
        await self.browser.close()
        await self.playwright.stop()
        errors = [line for line in self.console if line.startswith("pageerror")]
        assert not errors, self.console
