"""python-socketio peer: what its documentation shows for several processes.

An ``AsyncServer`` behind uvicorn with ``AsyncRedisManager`` so that an emit from any
process, or from a write-only ``RedisManager`` in another program (the way a Django
view would notify), reaches the room's sockets on every process. A client joins a
room with ``emit("subscribe", room, callback)``; the callback is the subscribe's ack.

Run: ``REDIS_URL=redis://127.0.0.1:PORT/0 uvicorn benchmarks.peers.socketio_app:application``
(needs the ``bench`` extra: ``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import os

import socketio

manager = socketio.AsyncRedisManager(os.environ["REDIS_URL"])
server = socketio.AsyncServer(
    async_mode="asgi",
    client_manager=manager,
    cors_allowed_origins="*",
    logger=False,
    engineio_logger=False,
)


@server.on("subscribe")
async def subscribe(sid: str, room: str) -> dict[str, bool]:
    await server.enter_room(sid, room)
    return {"ok": True}


application = socketio.ASGIApp(server)


def publisher(redis_url: str) -> socketio.RedisManager:
    """What a sync program (a view, a task) uses to emit into the servers' rooms."""
    return socketio.RedisManager(redis_url, write_only=True)
