"""A slow network between a client and a server: a TCP proxy on 127.0.0.1.

Every chunk (at most ``chunk`` bytes) waits ``latency`` seconds plus its share of
``rate`` bytes per second before it is forwarded, in both directions, so frames arrive
late and in dribbles; ``cut()`` drops every connection at once without a close
handshake, as a lost link does. It runs in the test's event loop and stops with it.
"""

from __future__ import annotations

import asyncio
import contextlib


class SlowProxy:
    def __init__(
        self,
        target_port: int,
        *,
        latency: float = 0.02,
        rate: float = 64_000,
        chunk: int = 4096,
    ) -> None:
        self.target_port = target_port
        self.latency, self.rate, self.chunk = latency, rate, chunk
        self.port = 0
        self.connections = 0  # accepted so far
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> SlowProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:  # the server is down: the client sees a refused link
            client_writer.transport.abort()
            return
        self._writers.update((client_writer, server_writer))
        for reader, writer in (
            (client_reader, server_writer),
            (server_reader, client_writer),
        ):
            task = asyncio.create_task(self._pump(reader, writer, client_writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client_writer: asyncio.StreamWriter,
    ) -> None:
        try:
            while data := await reader.read(self.chunk):
                await asyncio.sleep(self.latency + len(data) / self.rate)
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            # One side ended: end the other too (no half-open links through here).
            writer.transport.abort()
            self._writers.discard(writer)

    def cut(self) -> None:
        """Drop every open connection without a close frame or FIN."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
