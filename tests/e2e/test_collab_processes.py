"""Shared documents across real daphne processes and Redis: a client that was
offline reconnects to another process, sends what it typed and gets what it missed."""

from __future__ import annotations

import asyncio
import itertools
import json
import os

import pytest

from tests.support.collab import Peer
from tests.support.processes import free_port, start_server
from tests.support.servers import django_shell

pytestmark = pytest.mark.e2e


class Client:
    """A WebSocket client speaking the envelope: requests and queued group frames."""

    _ids = itertools.count(1)

    def __init__(self, ws) -> None:
        self.ws = ws
        self.frames: asyncio.Queue[dict] = asyncio.Queue()
        self.waiting: dict[str, asyncio.Future] = {}
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, port: int, token: str) -> Client:
        import websockets

        ws = await websockets.connect(
            f"ws://127.0.0.1:{port}/ws/docs/",
            additional_headers={"Authorization": f"Token {token}"},
        )
        assert json.loads(await ws.recv())["type"] == "rt.welcome"
        return cls(ws)

    async def _read(self) -> None:
        async for raw in self.ws:
            frame = json.loads(raw)
            future = self.waiting.pop(frame.get("id"), None)
            if future is not None and frame["type"] in ("rt.ack", "rt.error"):
                future.set_result(frame)
            elif frame["type"].startswith("doc."):
                self.frames.put_nowait(frame)

    async def request(self, type_: str, data: dict) -> dict:
        frame_id = f"c{next(self._ids)}"
        future = asyncio.get_running_loop().create_future()
        self.waiting[frame_id] = future
        await self.ws.send(json.dumps({"type": type_, "id": frame_id, "data": data}))
        return await asyncio.wait_for(future, 10)

    async def join(self, peer: Peer) -> None:
        assert (await self.request("rt.subscribe", {"group": peer.group}))["type"] == (
            "rt.ack"
        )
        ack = await self.request("doc.sync", peer.step1())
        assert ack["type"] == "rt.ack", ack
        reply = peer.answer(ack["data"])
        if reply is not None:
            assert (await self.request("doc.sync", reply))["type"] == "rt.ack"

    async def edit(self, peer: Peer, change) -> None:
        ack = await self.request("doc.sync", peer.edit(change))
        assert ack["type"] == "rt.ack", ack

    async def relayed(self, peer: Peer) -> None:
        frame = await asyncio.wait_for(self.frames.get(), 10)
        assert frame["type"] == "doc.sync"
        peer.receive(frame)

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


@pytest.fixture
def processes(e2e_db, tmp_path, own_redis):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.e2e_settings",
        "RT_TEST_DB": str(e2e_db),
        "REDIS_URL": own_redis.url,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    started = []
    for i in range(2):
        port = free_port()
        proc = start_server(
            "tests.support.collab_asgi:application",
            port,
            env=env,
            log=tmp_path / f"daphne-{i}.log",
        )
        started.append((proc, port))
    yield [port for _, port in started]
    for proc, _ in started:
        proc.terminate()
        proc.wait(10)


async def test_offline_edits_merge_after_reconnecting_to_another_process(
    processes, e2e_users, e2e_db
):
    one, two = processes
    group = "doc.processes"
    alice, bob = Peer(group), Peer(group)
    a = await Client.connect(one, e2e_users["alice"]["token"])
    b = await Client.connect(two, e2e_users["bob"]["token"])
    await a.join(alice)
    await b.join(bob)
    await a.edit(alice, lambda t: t.insert(0, "one paragraph"))
    await b.relayed(bob)  # through Redis, from process one to process two
    assert str(bob) == "one paragraph"

    await b.close()  # bob goes offline and edits the same paragraph
    bob.edit(lambda t: t.insert(3, " (bob offline)"))
    await a.edit(alice, lambda t: t.insert(len(t), " (alice online)"))

    b = await Client.connect(one, e2e_users["bob"]["token"])  # the other process
    await b.join(bob)
    await a.relayed(alice)  # bob's offline edit, relayed after he synced
    assert str(alice) == str(bob)
    assert "(bob offline)" in str(bob) and "(alice online)" in str(bob)
    stored = django_shell(
        e2e_db,
        f"import json\nfrom realtime.collab import store\n"
        f"print(json.dumps(store.text({group!r})))",
    )
    assert json.loads(stored) == str(alice)
    await a.close()
    await b.close()
