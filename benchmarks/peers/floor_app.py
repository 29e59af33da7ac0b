"""The server's floor: the connection exchange of realtime's protocol in bare ASGI.

No Django, no Channels, no Redis, no authentication: accept, send a welcome frame,
answer ``rt.subscribe`` with ``rt.ack``, answer ``rt.ping`` with ``rt.pong``, then
hold the socket. What a connection costs here is what daphne or uvicorn costs by
itself, the part of realtime's figures that no application code can remove
(connections.py ``--floor``).

Run: ``uvicorn benchmarks.peers.floor_app:application`` or
``daphne benchmarks.peers.floor_app:application``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

WELCOME = json.dumps(
    {
        "type": "rt.welcome",
        "data": {"protocol": 1, "connection_id": "floor", "heartbeat": 25},
    }
)


async def application(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": WELCOME})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        frame = json.loads(message.get("text") or "{}")
        if frame.get("type") == "rt.subscribe":
            reply = {"type": "rt.ack", "id": frame.get("id"), "data": {"seq": 0}}
        elif frame.get("type") == "rt.ping":
            reply = {"type": "rt.pong", "data": frame.get("data") or {}}
        else:
            continue
        await send({"type": "websocket.send", "text": json.dumps(reply)})
