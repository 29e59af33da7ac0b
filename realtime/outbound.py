"""The outbox: one connection's writes to its client, in order, bounded, pinged.

Every frame to a client goes through ``Outbox.write``: group events pushed by the hub
(never awaited per socket), replies, replays and pings. Bytes written but not yet
acknowledged by an ``rt.pong`` are counted; past MAX_PENDING_BYTES the outbox asks its
connection to close with 4507 (docs/protocol.md, "Heartbeat and slow consumers").
Each ping carries a random nonce and only a pong echoing it acknowledges anything, so
a client cannot vouch for bytes it has not read.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
import types
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from realtime import exceptions as exc
from realtime import metrics, status, transport
from realtime.encoding import dumps
from realtime.live import Event
from realtime.settings import realtime_settings

logger = logging.getLogger(__name__)


class Writes(enum.Enum):
    """What an outbox still does with what it is given."""

    OPEN = "open"  # writes, and watches the unacknowledged bytes
    CLOSING = "closing"  # writes its last frames (an rt.error) before the close
    SLOW = "slow"  # the client fell behind: events are dropped, closing with 4507
    CLOSED = "closed"  # the close was sent: nothing more is written


# The per-frame path compares with these: a member read through its class
# (Writes.OPEN) costs a lookup in the enum's class for every frame to every socket.
OPEN, CLOSING, SLOW, CLOSED = Writes
# Unanswered pings remembered; older ones are forgotten (their pong acknowledges
# nothing more).
MAX_PINGS = 32


class Outbox:
    """Ordered, backpressured writes to one WebSocket through the server's ``send``."""

    # One per socket, most of them idle: no instance dict.
    __slots__ = (
        "_close",
        "_connection_id",
        "_direct",
        "_log",
        "_pings",
        "_queue",
        "acked_bytes",
        "ping_bytes",
        "send",
        "sent_bytes",
        "state",
        "writer",
    )

    def __init__(
        self,
        send: Callable[[dict], Awaitable[None]],
        *,
        close: Callable[[exc.RealtimeError, int], Awaitable[None]],
        connection_id: str = "",
        log: Any = logger,
    ) -> None:
        self.send = send
        self.state = Writes.OPEN
        self.sent_bytes = self.ping_bytes = self.acked_bytes = 0
        # Set while a send waits on the server's flow control (see write).
        self.writer: asyncio.Future | None = None
        self._close = close
        self._connection_id = connection_id
        self._log = log
        # Frames behind a send waiting on flow control: made with the writer task.
        # Most sockets never need one, and an empty deque costs 600 bytes.
        self._queue: deque[dict] | None = None
        # (nonce, bytes sent before it) of the pings not answered yet, oldest first;
        # a short list: a deque would cost most of an idle connection's memory.
        self._pings: list[tuple[str, int]] = []
        # The server's frame writer (realtime.transport): None until looked up.
        self._direct: transport.FrameWriter | None = None

    # -- writing ----------------------------------------------------------------------

    async def send_frame(self, frame: dict) -> None:
        """Write a protocol frame and wait until it has left."""
        metrics.frame_out(frame["type"])
        await self.send_text(dumps(frame).decode())

    async def send_text(self, text: str) -> None:
        """Write ``text`` and wait until it has left (replies and replays)."""
        if self.write(text):
            await self._slow_consumer()
        if self.writer is not None:
            # Replies and replays wait until their frame has left: backpressure on
            # this connection's own task, never on the hub's fan-out.
            await asyncio.shield(self.writer)

    async def send_error(self, error: exc.RealtimeError, id: str | None = None) -> None:
        """Write ``error`` as an ``rt.error`` frame answering frame ``id``."""
        metrics.error(error.code)
        data: dict[str, Any] = {"code": error.code, "message": error.detail}
        if error.errors is not None:
            data["errors"] = error.errors
        frame: dict[str, Any] = {"type": "rt.error", "data": data}
        if id is not None:
            frame["id"] = id
        await self.send_frame(frame)

    async def ack(self, id: str | None, data: Any = None) -> None:
        """Answer frame ``id`` with an ``rt.ack`` (nothing when it carried no id)."""
        if id is not None:
            await self.send_frame({"type": "rt.ack", "id": id, "data": data})

    def write(
        self,
        text: str,
        message: dict | None = None,
        frame: bytes | None = None,
        event: Event | None = None,
    ) -> bool:
        """Hand ``text`` to the server now, in order; True when the client is too slow.

        The server's send is started by hand: daphne's never suspends, so a frame
        costs no task and no event-loop turn. One that does suspend (uvicorn under
        flow control) is finished by a writer task, and later frames queue behind
        it, so one slow socket never holds up the fan-out to the others. Queued
        bytes count as unacknowledged, so MAX_PENDING_BYTES bounds the queue.
        ``message`` and ``frame`` are the event's shared ASGI message and
        WebSocket frame, built once per process; ``event`` makes (once per
        process) its compressed frame, for sockets that negotiated it.
        """
        state = self.state
        if state is CLOSED:
            return False
        self.sent_bytes += len(text)
        if message is None:
            message = {"type": "websocket.send", "text": text}
        if self.writer is not None:
            self._queue.append(message)  # type: ignore[union-attr]
        elif frame is None or not self._write_frame(frame, event):
            self._flush_held()
            send = self.send(message)
            try:
                waiting = send.send(None)  # type: ignore[attr-defined]
            except StopIteration:
                pass
            except AttributeError:  # an awaitable that is not a coroutine
                self._start_writer(_awaited(send), None)
            except Exception as error:
                # The client has closed and the server knows it before Channels
                # does (daphne raises autobahn's Disconnected until the TCP
                # connection is gone): nothing more can reach this socket, and
                # the server reports the disconnect.
                self._log.info(
                    "connection %s: the client left before a write (%s)",
                    self._connection_id,
                    type(error).__name__,
                )
                self.state = CLOSED
                return False
            else:
                self._start_writer(send, waiting)  # type: ignore[arg-type]
        if state is not OPEN:
            return False  # closing already: no ping, no second close
        limit = realtime_settings.MAX_PENDING_BYTES
        if self.sent_bytes - self.acked_bytes > limit:
            return True
        if self.sent_bytes - self.ping_bytes > limit // 4:
            return self.write(self._next_ping())
        return False

    def _write_frame(self, frame: bytes, event: Event | None = None) -> bool:
        # A group event's frame, built once per process: on daphne it goes straight
        # to the transport (realtime.transport).
        direct = self._direct
        if direct is None:
            direct = self._direct = transport.frame_writer(self.send)
        # -- shared permessage-deflate (realtime.compression) --
        # The event, not its bound method, is passed: nothing is made per socket
        # unless the connection negotiated the shared compression.
        if event is not None and direct.deflate:
            frame = event.deflated_frame() or frame
        return direct(frame)

    def _flush_held(self) -> None:
        # Frames the direct writer holds until the end of the loop turn leave before
        # anything sent through the server: the socket sees the order of write().
        if self._direct is not None:
            self._direct.flush()

    def _start_writer(self, send: Coroutine, waiting: Any) -> None:
        self._queue = deque()
        self.writer = asyncio.ensure_future(self._drain(send, waiting))

    async def _drain(self, send: Coroutine, waiting: Any) -> None:
        """Finish a send that waited on flow control, then the frames behind it."""
        try:
            await _resume(send, waiting)
            queue = self._queue
            while queue:
                await self.send(queue.popleft())
        except Exception as error:
            # The socket went away mid-send; the server reports the disconnect.
            self._log.info("connection %s: send failed: %r", self._connection_id, error)
        finally:
            self.writer = None
            self._queue = None

    # -- closing ----------------------------------------------------------------------

    def closing(self) -> None:
        """The connection is closing: its last frames go out, unwatched."""
        if self.state is Writes.OPEN:
            self.state = Writes.CLOSING

    async def finish(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) until queued frames have left."""
        if self.writer is not None:
            # Frames queued behind a flow-controlled send (uvicorn) leave first, so
            # the close never overtakes them; bounded, the socket may be stuck.
            await asyncio.wait([self.writer], timeout=timeout)

    def close(self) -> None:
        """Write nothing more; frames held for the end of the loop turn leave now."""
        self.state = Writes.CLOSED
        self._flush_held()

    async def _slow_consumer(self) -> None:
        self.state = Writes.SLOW
        self._log.info(
            "connection %s: slow consumer (%d bytes unacknowledged)",
            self._connection_id,
            self.sent_bytes - self.acked_bytes,
        )
        # Dropped, not sent: the client is closed and recovers them from history.
        if self._queue is not None:
            self._queue.clear()
        await self._close(exc.SlowConsumer(), status.WS_4507_SLOW_CONSUMER)

    def too_slow(self) -> None:
        """Close the connection as too slow, once, from a task of its own: the
        hub's loop does not wait for it."""
        if self.state is Writes.OPEN:
            self.state = Writes.SLOW
            background(self._slow_consumer())

    # -- pings ------------------------------------------------------------------------

    def ping(self) -> None:
        """Write an ``rt.ping`` without waiting: the hub's ticker pings every
        connection in turn, and one waiting on flow control must not hold it up."""
        if self.write(self._next_ping()):
            self.too_slow()

    def _next_ping(self) -> str:
        """An ``rt.ping`` frame with a fresh nonce, recorded with the bytes before it.

        The pong echoing the nonce proves the client read everything sent before
        the ping: frames on one socket arrive in order, and the nonce is unguessable.
        """
        nonce = secrets.token_urlsafe(12)
        self.ping_bytes = self.sent_bytes
        pings = self._pings
        pings.append((nonce, self.sent_bytes))
        if len(pings) > MAX_PINGS:
            del pings[0]
        metrics.frame_out("rt.ping")
        return '{"type":"rt.ping","data":{"nonce":"' + nonce + '"}}'

    def pong(self, data: dict) -> None:
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
                del pings[: index + 1]
                self.acked_bytes = max(self.acked_bytes, sent_bytes)
                return


_tasks: set[asyncio.Future] = set()


def background(coro: Coroutine) -> None:
    """Run ``coro`` in a task of its own, held until it finishes."""
    # The loop keeps only weak references to tasks.
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
