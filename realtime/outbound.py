"""The outbound side of a connection: ordered writes, backpressure, slow consumers.

Every frame to a client goes through ``_write``: group events pushed by the hub
(``push``, never awaited per socket), replies, replays and pings. Bytes written but
not yet acknowledged by an ``rt.pong`` are counted; past MAX_PENDING_BYTES the
connection is closed with 4507 (docs/protocol.md, "Heartbeat and slow consumers").
Each ping carries a random nonce and only a pong echoing it acknowledges anything, so
a client cannot vouch for bytes it has not read.
"""

from __future__ import annotations

import asyncio
import secrets
import types
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, cast

from realtime import exceptions as exc
from realtime import metrics, status, transport
from realtime.encoding import dumps
from realtime.live import Event
from realtime.settings import realtime_settings


class OutboundMixin:
    """Writing to the client; mixed into RealtimeConsumer."""

    if TYPE_CHECKING:  # provided by RealtimeConsumer
        base_send: Callable[[dict], Any]
        closed: bool
        _closing: bool
        connection_id: str
        log: Any
        subs: dict[str, Any]
        versions: dict[str, int]
        sent_bytes: int
        acked_bytes: int
        ping_bytes: int
        _pings: deque[tuple[str, int]]

        async def close(
            self, error: exc.RealtimeError | None = None, code: int = ...
        ) -> None: ...
        def _in_order(self, sub: Any, event: Event) -> bool: ...
        def _due_reset(self, sub: Any) -> None: ...

    # Set while a send waits on the server's flow control (see _write).
    _writer: asyncio.Future | None = None
    _outbox: deque[dict] | None = None
    # Set once the connection is found too slow: it is being closed with 4507.
    _slow = False
    # The connection's frame writer (realtime.transport): None until looked up.
    _direct: transport.FrameWriter | None = None

    async def _send_frame(self, frame: dict) -> None:
        metrics.frame_out(frame["type"])
        await self._send_text(dumps(frame).decode())

    async def _send_text(self, text: str) -> None:
        if self._write(text) and not self._slow:
            self._slow = True
            await self._slow_consumer()
        if self._writer is not None:
            # Replies and replays wait until their frame has left: backpressure on
            # this connection's own task, never on the hub's fan-out.
            await asyncio.shield(self._writer)

    def _write(
        self, text: str, message: dict | None = None, frame: bytes | None = None
    ) -> bool:
        """Hand ``text`` to the server now, in order; True when the client is too slow.

        The server's send is started by hand: daphne's never suspends, so a frame
        costs no task and no event-loop turn. One that does suspend (uvicorn under
        flow control) is finished by a writer task, and later frames queue behind
        it, so one slow socket never holds up the fan-out to the others. Queued
        bytes count as unacknowledged, so MAX_PENDING_BYTES bounds the queue.
        """
        if self.closed:
            return False
        self.sent_bytes += len(text)
        if message is None:
            message = {"type": "websocket.send", "text": text}
        if self._writer is not None:
            cast(deque, self._outbox).append(message)
        elif frame is None or not self._write_frame(frame):
            self._flush_held()
            send = self.base_send(message)
            try:
                waiting = send.send(None)
            except StopIteration:
                pass
            except AttributeError:  # an awaitable that is not a coroutine
                self._start_writer(_awaited(send), None)
            else:
                self._start_writer(send, waiting)
        if self._closing:
            return False
        limit = realtime_settings.MAX_PENDING_BYTES
        if self.sent_bytes - self.acked_bytes > limit:
            return True
        if self.sent_bytes - self.ping_bytes > limit // 4:
            return self._write(self._next_ping())
        return False

    def _write_frame(self, frame: bytes) -> bool:
        # A group event's frame, built once per process: on daphne it goes straight
        # to the transport (realtime.transport).
        if self._direct is None:
            self._direct = transport.frame_writer(self.base_send)
        return self._direct(frame)

    def _flush_held(self) -> None:
        # Frames the direct writer holds until the end of the loop turn leave before
        # anything sent through the server: the socket sees the order of _write.
        if self._direct is not None:
            self._direct.flush()

    def _start_writer(self, send: Coroutine, waiting: Any) -> None:
        self._outbox = deque()
        self._writer = asyncio.ensure_future(self._drain(send, waiting))

    async def _drain(self, send: Coroutine, waiting: Any) -> None:
        """Finish a send that waited on flow control, then the frames behind it."""
        try:
            await _resume(send, waiting)
            while self._outbox:
                await self.base_send(self._outbox.popleft())
        except Exception as error:
            # The socket went away mid-send; the server reports the disconnect.
            self.log.info("connection %s: send failed: %r", self.connection_id, error)
        finally:
            self._writer = self._outbox = None

    async def _slow_consumer(self) -> None:
        self.log.info(
            "connection %s: slow consumer (%d bytes unacknowledged)",
            self.connection_id,
            self.sent_bytes - self.acked_bytes,
        )
        if self._outbox:
            # Dropped, not sent: the client is closed and recovers them from history.
            self._outbox.clear()
        await self.close(exc.SlowConsumer(), status.WS_4507_SLOW_CONSUMER)

    def _too_slow(self) -> None:
        # Close once, from a task of its own: the hub's loop does not wait for it.
        if not self._slow:
            self._slow = True
            _background(self._slow_consumer())

    async def _ping(self) -> None:
        # Not awaited: the hub's ticker pings every connection in turn, and a socket
        # whose send is waiting on flow control must not hold up the others.
        if self._write(self._next_ping()):
            self._too_slow()

    def _next_ping(self) -> str:
        """An ``rt.ping`` frame with a fresh nonce, recorded with the bytes before it.

        The pong echoing the nonce proves the client read everything sent before
        the ping: frames on one socket arrive in order, and the nonce is unguessable.
        """
        nonce = secrets.token_urlsafe(12)
        self.ping_bytes = self.sent_bytes
        self._pings.append((nonce, self.sent_bytes))
        metrics.frame_out("rt.ping")
        return '{"type":"rt.ping","data":{"nonce":"' + nonce + '"}}'

    def _pong(self, data: dict) -> None:
        """Acknowledge what was sent before the ping whose nonce ``data`` echoes.

        A pong that echoes no outstanding ping (unrequested, guessed, replayed)
        acknowledges nothing; it still counts as a sign of life for the heartbeat.
        """
        nonce = data.get("nonce")
        if not isinstance(nonce, str):
            return
        echoed = nonce.encode()
        pings = self._pings
        for index, (sent_nonce, sent_bytes) in enumerate(pings):
            if secrets.compare_digest(sent_nonce.encode(), echoed):
                # Pongs come back in order: older pings are answered by this one.
                for _ in range(index + 1):
                    pings.popleft()
                self.acked_bytes = max(self.acked_bytes, sent_bytes)
                return

    async def _send_error(
        self, error: exc.RealtimeError, id: str | None = None
    ) -> None:
        metrics.error(error.code)
        data: dict[str, Any] = {"code": error.code, "message": error.detail}
        if error.errors is not None:
            data["errors"] = error.errors
        frame: dict[str, Any] = {"type": "rt.error", "data": data}
        if id is not None:
            frame["id"] = id
        await self._send_frame(frame)

    async def _ack(self, id: str | None, data: Any = None) -> None:
        if id is not None:
            await self._send_frame({"type": "rt.ack", "id": id, "data": data})

    async def deliver(self, event: Event) -> None:
        """Write a group event to this socket."""
        self.push(event)

    def push(self, event: Event) -> None:
        """Write a group event to this socket without waiting (called by the hub)."""
        sub = self.subs.get(event.group)
        if sub is None or event.exclude == self.connection_id:
            return
        if sub.buffer is not None:
            sub.buffer.append(event)
            return
        if sub.reset_due is not None:
            self._due_reset(sub)
        if event.seq is not None and not self._in_order(sub, event):
            return
        if self.versions:
            text = event.text_for(self.versions.get(event.type))
            if text is None:
                return
            message = frame = None
        else:
            # One ASGI message and one frame per event per process: servers only
            # read the message, and the frame is the same bytes on every socket.
            text, message, frame = event.text, event.message, event.frame
        if self._slow:
            return  # closing with 4507: the client recovers the rest from history
        if self._write(text, message, frame):
            self._too_slow()


_tasks: set[asyncio.Future] = set()


def _background(coro: Coroutine) -> None:
    # The loop keeps only weak references to tasks: hold them until they finish.
    task = asyncio.ensure_future(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


@types.coroutine
def _resume(send: Coroutine, waiting: Any) -> Any:
    """Continue a coroutine that was started by hand and suspended on ``waiting``."""
    try:
        yield waiting
    except BaseException:
        send.close()
        raise
    return (yield from send)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
