"""A small protocol-speaking client over a real TCP WebSocket (the websockets package)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

_ids = itertools.count(1)


class Client:
    """Reads frames in order; answers rt.ping unless told not to."""

    def __init__(self, ws: ClientConnection, *, answer_pings: bool = True) -> None:
        self.ws = ws
        self.answer_pings = answer_pings
        self.welcome: dict | None = None
        self.pending: list[dict] = []

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        headers: dict | None = None,
        origin: str | None = None,
        answer_pings: bool = True,
        **kw: Any,
    ) -> Client:
        ws = await connect(
            url,
            additional_headers=headers,
            origin=origin,
            open_timeout=10,
            ping_interval=None,
            **kw,
        )
        client = cls(ws, answer_pings=answer_pings)
        client.welcome = await client.recv()
        return client

    async def send(self, frame: dict) -> None:
        await self.ws.send(orjson.dumps(frame).decode())

    async def recv(self, timeout: float = 5) -> dict:
        """Next frame that is not a server ping (pings are answered)."""
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
            frame = orjson.loads(raw)
            if frame.get("type") == "rt.ping" and self.answer_pings:
                await self.pong(frame)
                continue
            return frame

    async def pong(self, ping: dict) -> None:
        """Answer a server ``rt.ping``: the pong echoes its data (the nonce)."""
        await self.send({"type": "rt.pong", "data": ping.get("data") or {}})

    async def next_event(self, timeout: float = 5) -> dict:
        if self.pending:
            return self.pending.pop(0)
        return await self.recv(timeout)

    async def request(
        self, type: str, data: Any = None, timeout: float = 5, **extra: Any
    ) -> dict:
        frame_id = f"c{next(_ids)}"
        await self.send({"type": type, "id": frame_id, "data": data or {}, **extra})
        while True:
            frame = await self.recv(timeout)
            if frame.get("id") == frame_id and frame["type"] in ("rt.ack", "rt.error"):
                return frame
            self.pending.append(frame)

    async def closed_with(self, timeout: float = 5) -> tuple[list[dict], int]:
        """Read until the server closes; return (frames before close, close code)."""
        frames = []
        try:
            while True:
                frames.append(await self.recv(timeout))
        except ConnectionClosed as closed:
            return frames, closed.rcvd.code if closed.rcvd else 1006

    async def close(self) -> None:
        await self.ws.close()
