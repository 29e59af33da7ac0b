"""The per-process hub: one channel-layer subscription per group, fan-out to sockets.

Plain Channels gives every socket its own layer channel, so one group event becomes
one layer message, one dispatch and one JSON encode per socket. Here each process
joins each group once (with one channel of its own); an event arrives once per
process as ready JSON text and is written to every local socket subscribed to it.
The hub also owns the timers of its connections (heartbeat, auth timeout, presence
leases), so an idle connection costs no task and no timer of its own.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

import orjson
from channels.layers import get_channel_layer

from realtime import metrics
from realtime.backends import registry
from realtime.settings import realtime_settings
from realtime.wire import text_frame

if TYPE_CHECKING:
    from realtime.consumers import RealtimeConsumer

logger = logging.getLogger(__name__)
EVENT = "rt.event"


class Event:
    """One event as the hub received it; variants for older clients are cached."""

    __slots__ = (
        "_variants",
        "exclude",
        "frame",
        "group",
        "message",
        "seq",
        "text",
        "type",
        "v",
    )

    def __init__(self, message: dict[str, Any]) -> None:
        self.group: str = message["group"]
        self.type: str = message["event"]
        self.v: int | None = message.get("v")
        self.seq: int | None = message.get("seq")
        self.text: str = message["text"]
        # The ASGI message every local socket is sent (servers do not mutate it).
        self.message = {"type": "websocket.send", "text": self.text}
        self.frame = text_frame(self.text)  # the same on every daphne socket
        # The sender of an ephemeral client event does not get its own echo.
        self.exclude: str | None = message.get("exclude")
        self._variants: dict[int, str | None] | None = None

    def text_for(self, version: int | None) -> str | None:
        """The frame for a client that understands ``version`` (None: skip)."""
        if version is None or self.v is None or version >= self.v:
            return self.text
        if self._variants is None:
            self._variants = {}
        if version not in self._variants:
            self._variants[version] = self._downgrade(self.v, version)
        return self._variants[version]

    def _downgrade(self, current: int, version: int) -> str | None:
        from realtime.schema import registry

        frame = orjson.loads(self.text)
        try:
            target, frame["data"] = registry.downgrade_for(
                self.type, frame["data"], current, version
            )
        except LookupError as exc:  # NoDowngrade
            logger.warning(
                "not sent to a v%s client of %s: %s", version, self.type, exc
            )
            return None
        frame["v"] = target
        return orjson.dumps(frame).decode()


class Hub:
    """Group membership and fan-out for every connection on one event loop."""

    def __init__(self) -> None:
        self.layer = get_channel_layer(realtime_settings.CHANNEL_LAYER)
        self.channel: str | None = None
        self.groups: dict[str, set[RealtimeConsumer]] = {}
        self.connections: set[RealtimeConsumer] = set()
        self._membership = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self._started = False
        self.loop = asyncio.get_running_loop()

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.layer is not None:
            self.channel = await self.layer.new_channel()
            self._tasks.append(asyncio.create_task(self._receive_loop()))
            if hasattr(self.layer, "group_expiry"):
                self._tasks.append(asyncio.create_task(self._refresh_groups()))
        self._tasks.append(asyncio.create_task(self._ticker()))
        self._tasks.append(asyncio.create_task(self._revalidate()))
        self._tasks.append(asyncio.create_task(registry.heartbeat(self)))
        self._install_shutdown()

    def _install_shutdown(self) -> None:
        """On SIGTERM/SIGINT, close every socket with 4503 before the server stops.

        The server's own handler (daphne's reactor, uvicorn's) runs right after, so
        clients learn to reconnect elsewhere instead of seeing a dropped connection.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)
            if getattr(previous, "_realtime", False):
                continue

            def handler(signum: int, frame: Any, previous: Any = previous) -> None:
                self.loop.call_soon_threadsafe(
                    lambda: asyncio.ensure_future(
                        self.shutdown(signum, frame, previous)
                    )
                )

            handler._realtime = True  # type: ignore[attr-defined]
            try:
                signal.signal(signum, handler)
            except ValueError:
                return

    async def shutdown(
        self, signum: int = 0, frame: Any = None, previous: Any = None
    ) -> None:
        """Close every connection with 4503, then hand over to ``previous``."""
        from realtime import status
        from realtime.exceptions import ShuttingDown

        closing = [
            consumer.close(ShuttingDown(), status.WS_4503_SHUTTING_DOWN)
            for consumer in tuple(self.connections)
        ]
        if closing:
            logger.info("shutting down: closing %d connections with 4503", len(closing))
            await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), 5)
        if previous is None:
            return
        # Hand the signal back: servers re-raise it at exit to report how they ended.
        signal.signal(signum, previous)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.raise_signal(signum)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
        self._started = False

    async def join(self, group: str, consumer: RealtimeConsumer) -> None:
        """Deliver ``group``'s events to ``consumer`` from now on."""
        async with self._membership:
            members = self.groups.get(group)
            if members is None:
                # Record the group only once the layer has it: a failed group_add
                # (Redis down) must not leave a group every later join skips.
                if self.layer is not None:
                    await self.layer.group_add(group, self.channel)
                members = self.groups[group] = set()
            members.add(consumer)

    async def leave(self, group: str, consumer: RealtimeConsumer) -> None:
        async with self._membership:
            members = self.groups.get(group)
            if members is None:
                return
            members.discard(consumer)
            if not members:
                del self.groups[group]
                if self.layer is not None:
                    await self.layer.group_discard(group, self.channel)

    async def _receive_loop(self) -> None:
        failures = 0
        while True:
            try:
                if failures:
                    # A Redis that restarted has lost this process's group
                    # memberships (channels-redis core does not restore them).
                    await self._rejoin_groups()
                    logger.warning(
                        "channel layer is back after %d failed attempts; rejoined "
                        "%d groups",
                        failures,
                        len(self.groups),
                    )
                    failures = 0
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # A lost Redis connection: keep the process serving and retry with
                # backoff; clients recover gaps from history.
                if not failures:
                    logger.exception("channel layer receive failed; retrying")
                else:
                    logger.debug("channel layer still failing: %s", error)
                failures += 1
                await asyncio.sleep(min(0.25 * failures, 2.0))
                continue
            if message.get("type") == EVENT:
                await self.dispatch(Event(message))

    async def _rejoin_groups(self) -> None:
        async with self._membership:
            for group in tuple(self.groups):
                await self.layer.group_add(group, self.channel)

    async def _refresh_groups(self) -> None:
        """Re-add every group well before channels-redis's group_expiry drops it
        (a group that always has a local member is joined only once)."""
        interval = min(float(self.layer.group_expiry) / 3, 30.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._rejoin_groups()
            except Exception as error:
                logger.warning("refreshing group memberships failed: %s", error)

    async def dispatch(self, event: Event) -> None:
        members = self.groups.get(event.group)
        if not members:
            return
        metrics.fanout(event.type, len(members))
        # push() never waits: a socket whose send suspends gets a writer task of
        # its own, so the loop over the others goes on.
        for consumer in tuple(members):
            try:
                consumer.push(event)
            except Exception:
                consumer.log.exception("delivery to %s failed", consumer.connection_id)

    async def _ticker(self) -> None:
        """Heartbeats, auth deadlines and presence leases for every connection."""
        last_lease = time.monotonic()
        while True:
            interval = realtime_settings.HEARTBEAT_INTERVAL
            tick = min(1.0, interval / 4, realtime_settings.AUTH_TIMEOUT / 4)
            await asyncio.sleep(tick)
            now = time.monotonic()
            for consumer in tuple(self.connections):
                try:
                    await consumer.tick(now)
                except Exception:
                    consumer.log.exception("tick of %s failed", consumer.connection_id)
            if now - last_lease >= interval:
                last_lease = now
                try:
                    await self._renew_presence()
                except Exception:
                    logger.exception("presence lease renewal failed")

    async def _renew_presence(self) -> None:
        from realtime.backends import get_backend
        from realtime.presence import leave_events, presence_ttl

        entries = [
            (group, consumer.connection_id)
            for consumer in self.connections
            for group in consumer.presence_groups
        ]
        backend = get_backend()
        await backend.presence_refresh(entries, presence_ttl())
        for group, member in await backend.presence_sweep():
            await leave_events(group, member)

    async def _revalidate(self) -> None:
        """Close, with 4401, connections of users deactivated or deleted, whose DRF
        token was deleted, or whose Django session ended (logout, expiry, password
        change), since they connected: a few queries per process per
        REVALIDATE_INTERVAL, not one per socket."""
        from realtime import status
        from realtime.auth import ended_sessions, revoked_tokens, revoked_users
        from realtime.exceptions import NotAuthenticated

        while True:
            interval = realtime_settings.REVALIDATE_INTERVAL
            await asyncio.sleep(interval or 60)
            if not interval:
                continue
            signed_in = [c for c in self.connections if c.user.is_authenticated]
            if not signed_in:
                continue
            tokens = {c.token_key for c in signed_in if c.token_key is not None}
            sessions = {
                c.session_key: c.user.pk for c in signed_in if c.session_key is not None
            }
            try:
                revoked = await revoked_users({c.user.pk for c in signed_in})
                gone = await revoked_tokens(tokens)
                ended = await ended_sessions(sessions)
            except Exception:
                logger.exception("re-checking users failed")
                continue
            for consumer in signed_in:
                if consumer not in self.connections:
                    continue  # left while the queries ran
                if (
                    consumer.user.pk in revoked
                    or consumer.token_key in gone
                    or consumer.session_key in ended
                ):
                    await consumer.close(
                        NotAuthenticated("your credentials were revoked"),
                        status.WS_4401_NOT_AUTHENTICATED,
                    )

    async def publish_local(self, event: Event) -> None:
        """Deliver straight to local sockets (no channel layer configured)."""
        await self.dispatch(event)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = (
    weakref.WeakKeyDictionary()
)


async def get_hub() -> Hub:
    """Return the running loop's hub, starting it on first use."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
        await hub.start()
    return hub


def server_loop() -> asyncio.AbstractEventLoop | None:
    """The loop of a hub that serves connections in this process, if any."""
    for loop, hub in list(_hubs.items()):
        if hub.connections and loop.is_running() and not loop.is_closed():
            return loop
    for loop in list(_hubs):
        if loop.is_running() and not loop.is_closed():
            return loop
    return None


async def shutdown_hub() -> None:
    """Stop the running loop's hub (tests, and graceful shutdown)."""
    hub = _hubs.pop(asyncio.get_running_loop(), None)
    if hub is not None:
        await hub.stop()
