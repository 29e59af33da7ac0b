"""The per-process hub: one channel-layer subscription per group, fan-out to sockets.

Plain Channels gives every socket its own layer channel, so one group event becomes
one layer message, one dispatch and one JSON encode per socket. Here each process
joins each group once (with one channel of its own); an event arrives once per
process as ready JSON text and is written to every local socket subscribed to it.
The hub also watches continuity (restarted Redis servers, positions of history
groups) and runs, as its own tasks, the periodic jobs realtime.runtime gives it
(connection deadlines, presence leases, credential re-checks, the process
heartbeat), so they stop with it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer

from realtime import history, metrics
from realtime.backends import get_backend
from realtime.backends.base import HistoryRead
from realtime.connection import Connection
from realtime.frames import LAYER_EVENT
from realtime.layers import (
    get_layer,
    is_process_local,
    layer_hosts,
    new_hub_channel,
    shard_of,
    unreachable,
)
from realtime.live import Event
from realtime.settings import realtime_settings

logger = logging.getLogger(__name__)
PROBE = "realtime-probe"

#: A periodic job of a service above the hub, run as ``job(hub)`` (realtime.runtime).
Job = Callable[["Hub"], Coroutine[Any, Any, None]]


class Hub:
    """Group membership and fan-out for every connection on one event loop."""

    def __init__(self) -> None:
        layer = get_layer()
        # A process-local layer (in-memory) reaches only this process: events are
        # dispatched straight to the hubs, with no capacity to overflow.
        self.layer: Any = None if layer is None or is_process_local(layer) else layer
        self.channel: str | None = None
        self.channel_id = ""
        self.groups: dict[str, set[Connection]] = {}
        self.connections: set[Connection] = set()
        self._membership = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self._started = False
        self.loop = asyncio.get_running_loop()
        self.starting: asyncio.Future | None = None
        self.arrivals = 0  # events dispatched so far (Event.arrival)
        # Set on SIGTERM (realtime.processes.shutdown): new sockets are turned away.
        self.shutting_down = False
        # History reads shared by the sockets that found the same gap in one turn.
        self._reads: dict[tuple[str, int, str | None], _Read] = {}
        # And those of the subscribes of one loop turn, one per group.
        self.subscribe_reads = history.TurnReads(self.groups.get)
        self._known = self.subscribe_reads.known
        # Each history group's position at the previous check (see _positions).
        self._positions: dict[str, tuple[str, int]] = {}
        self._warned: dict[tuple[str, str], float] = {}
        # One group per Redis server of the layer, joined by this hub alone.
        self._probes: dict[int, str] = {}
        self._probe_waiters: dict[str, asyncio.Future] = {}
        self._hooks: list[_ReconnectHook] = []
        self._watcher: _ServerWatch | None = None

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.layer is not None:
            self.channel = await new_hub_channel(self.layer)
            self.channel_id = uuid.uuid4().hex[:16]
            await self._join_probes()
            self._hook_reconnects()
            # Each server's run_id before any client relies on it: a restart
            # from now on is noticed (see _watch).
            self._watcher = _ServerWatch(self.layer)
            await self._watcher.restarted()
            self._tasks.append(asyncio.create_task(self._receive_loop()))
            if hasattr(self.layer, "group_expiry"):
                self._tasks.append(asyncio.create_task(self._refresh_groups()))
        self._tasks.append(asyncio.create_task(self._watch()))

    def run(self, job: Job) -> None:
        """Run ``job(self)`` as a task of this hub, until the hub stops."""
        self._tasks.append(asyncio.create_task(job(self)))

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
        await self.leave_probes()
        if self._watcher is not None:
            await self._watcher.close()
            self._watcher = None

    async def join(self, group: str, consumer: Connection) -> None:
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

    async def leave(self, group: str, consumer: Connection) -> None:
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
                    self.mark_lost(None)
                    await self._rejoin_groups()
                    logger.warning(
                        "channel layer is back after %d failed attempts; rejoined "
                        "%d groups",
                        failures,
                        len(self.groups),
                    )
                    failures = 0
                    # In the background: it waits for a probe this loop receives.
                    _background(self._outage_over(None))
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # A lost Redis connection: keep the process serving and retry with
                # backoff; the gap is repaired from history once it is back.
                if not failures:
                    logger.exception("channel layer receive failed; retrying")
                else:
                    logger.debug("channel layer still failing: %s", error)
                failures += 1
                await asyncio.sleep(min(0.25 * failures, 2.0))
                continue
            if message.get("type") == LAYER_EVENT:
                await self.dispatch(Event(message))
            elif message.get("type") == PROBE:
                waiter = self._probe_waiters.pop(message.get("token"), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    async def _rejoin_groups(self, shard: int | None = None) -> None:
        async with self._membership:
            for group in (*self.groups, *self._probes.values()):
                if shard is None or shard_of(self.layer, group) == shard:
                    await self.layer.group_add(group, self.channel)

    async def _join_probes(self) -> None:
        """Join one group per Redis server of the layer, to prove delivery works."""
        for index in range(len(layer_hosts(self.layer))):
            group = next(
                name
                for k in itertools.count()
                if shard_of(self.layer, name := f"{PROBE}.{self.channel_id}.{k}")
                == index
            )
            self._probes[index] = group
            await self.layer.group_add(group, self.channel)

    async def leave_probes(self) -> None:
        """Leave the probe groups (at shutdown: other processes need not wait for
        their memberships to expire)."""
        probes, self._probes = self._probes, {}
        for group in probes.values():
            try:
                async with asyncio.timeout(2):
                    await self.layer.group_discard(group, self.channel)
            except Exception as error:  # Redis gone: the membership expires
                logger.debug("leaving %s failed: %r", group, error)

    async def _delivering(self, shard: int | None, timeout: float = 10.0) -> bool:
        """Wait until a message sent through ``shard`` (every shard: None) reaches
        this hub again: after a restart the layer resubscribes on its own time."""
        deadline = time.monotonic() + timeout
        errors: tuple[type[BaseException], ...] = (TimeoutError, *unreachable())
        for index, group in self._probes.items():
            if shard is not None and index != shard:
                continue
            while True:
                token = uuid.uuid4().hex
                waiter = self._probe_waiters[token] = self.loop.create_future()
                try:
                    await self.layer.group_send(group, {"type": PROBE, "token": token})
                    await asyncio.wait_for(waiter, 0.25)
                    break
                except errors:
                    if time.monotonic() > deadline:
                        return False
                    await asyncio.sleep(0.05)
                finally:
                    self._probe_waiters.pop(token, None)
        return True

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
        self.arrivals += 1
        event.arrival = self.arrivals
        self._known.advance(event.group, event.seq, event.epoch)
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

    # -- continuity: gaps, new epochs, restarted servers --------------------------

    def read_since(self, group: str, since: int, epoch: str | None) -> _Read:
        """Read ``group``'s history after ``since``, once for every socket of this
        process that asks in the same loop turn (one lost layer message shows the
        same gap to all of them)."""
        key = (group, since, epoch)
        read = self._reads.get(key)
        if read is None or read.issued is not None:
            read = self._reads[key] = _Read()
            read.task = asyncio.ensure_future(self._read(key, read))
        return read

    async def _read(self, key: tuple[str, int, str | None], read: _Read) -> HistoryRead:
        # Events that reached the hub before this point were published before the
        # read: what it returns covers them (see Connection._repair).
        read.issued = self.arrivals
        try:
            return await get_backend().since(*key)
        finally:
            if self._reads.get(key) is read:
                del self._reads[key]

    def warn_lost(self, group: str, reason: str, detail: str) -> None:
        """Log a loss at WARNING, once per group and reason every 10 seconds."""
        now = time.monotonic()
        if now - self._warned.get((group, reason), -60.0) < 10:
            return
        if len(self._warned) > 4096:
            self._warned.clear()
        self._warned[group, reason] = now
        logger.warning("group %s: %s (%s)", group, detail, reason)

    async def _watch(self) -> None:
        """Every POSITION_CHECK_INTERVAL: notice restarted Redis servers (their
        ``run_id`` changes) within seconds, and compare each history group's
        position with the backend's, repairing gaps nothing else revealed."""
        watcher = self._watcher
        try:
            while True:
                interval = realtime_settings.POSITION_CHECK_INTERVAL
                await asyncio.sleep(interval or 5.0)
                if not interval:
                    continue
                try:
                    if watcher is not None:
                        for shard in await watcher.restarted():
                            if not self._hooks:  # else the hook has marked them
                                self.mark_lost(shard)
                            await self._rejoin_groups(shard)
                            await self._outage_over(shard)
                    await self._check_positions()
                except asyncio.CancelledError:
                    raise
                except unreachable() as error:
                    logger.debug("position check failed: %r", error)
                except Exception:
                    logger.exception("position check failed")
        finally:
            if watcher is not None and watcher is self._watcher:
                self._watcher = None
                await watcher.close()

    def mark_lost(self, shard: int | None, reason: str = "layer_restarted") -> None:
        """Events of groups without history routed through ``shard`` (every
        shard: None) may have been lost: each subscriber gets rt.reset before the
        next event of the group, so the signal sits where the gap is."""
        self._known.clear()
        for group, members in tuple(self.groups.items()):
            if shard is not None and shard_of(self.layer, group) != shard:
                continue
            if history.keeps_history(group):
                continue  # seqs show the gap, history fills it
            self.warn_lost(group, reason, "events sent meanwhile may be lost")
            metrics.lost(reason)
            for consumer in tuple(members):
                consumer.mark_reset(group, reason)

    async def _outage_over(self, shard: int | None) -> None:
        """The layer delivers again after losing events: send the resets no event
        carried yet, and repair history groups now."""
        self._known.clear()
        logger.warning(
            "channel layer %s was unavailable or restarted; checking %d groups",
            "server" if shard is None else f"server {shard}",
            len(self.groups),
        )
        if not await self._delivering(shard):
            logger.warning("channel layer still not delivering; checking anyway")
        if shard is None and self._watcher is not None:
            # Every server was just handled: the watcher must not report the same
            # restart again (a second rt.reset for the same loss).
            try:
                await self._watcher.restarted()
            except unreachable() as error:
                logger.debug("re-reading run_ids failed: %r", error)
        for group, members in tuple(self.groups.items()):
            if shard is None or shard_of(self.layer, group) == shard:
                for consumer in tuple(members):
                    consumer.flush_reset(group)
        await self._check_positions(immediate=True)

    def _hook_reconnects(self) -> None:
        """The pub/sub layer reconnects and resubscribes by itself: hear of it
        before the first message of the new connection is read."""
        if not isinstance(self.layer, RedisPubSubChannelLayer):
            return
        for index, shard in enumerate(self.layer._shards):
            pubsub = getattr(shard, "_pubsub", None)
            connection = getattr(pubsub, "connection", None)
            if connection is not None:
                hook = _ReconnectHook(self, index)
                self._hooks.append(hook)
                connection.register_connect_callback(hook.connected)

    async def _check_positions(self, *, immediate: bool = False) -> None:
        groups = [g for g in self.groups if history.keeps_history(g)]
        previous, self._positions = self._positions, {}
        if not groups:
            return
        current = await get_backend().positions(groups)
        for group, (seq, epoch) in zip(groups, current, strict=True):
            if epoch is None:
                continue
            self._positions[group] = (epoch, seq)
            # A position seen one interval ago that a socket still has not reached
            # was lost on the way (events in flight reach it within a turn or two).
            target = (epoch, seq) if immediate else previous.get(group)
            if target is None:
                continue
            for consumer in tuple(self.groups.get(group, ())):
                consumer.check_position(group, *target)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = (
    weakref.WeakKeyDictionary()
)


async def get_hub() -> Hub:
    """Return the running loop's hub, starting it on first use.

    Connections that arrive together while the hub starts (a reconnect storm on a
    process whose port just opened) all wait for the same start.
    """
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
        hub.starting = asyncio.ensure_future(hub.start())
    starting = hub.starting
    if starting is not None and not starting.done():
        try:
            await asyncio.shield(starting)
        except Exception:
            if _hubs.get(loop) is hub:
                del _hubs[loop]
                await hub.stop()
            raise
    elif starting is not None and starting.exception() is not None:
        raise starting.exception()  # type: ignore[misc]
    return hub


class _Read:
    """A history read shared by the sockets that found one gap."""

    __slots__ = ("issued", "task")

    def __init__(self) -> None:
        self.issued: int | None = None  # Hub.arrivals when the read was sent
        self.task: asyncio.Future[HistoryRead]


class _ReconnectHook:
    """A pub/sub connection's connect callback (redis-py keeps a weak reference)."""

    def __init__(self, hub: Hub, shard: int) -> None:
        self.hub, self.shard = hub, shard

    def connected(self, connection: Any) -> None:
        self.hub.mark_lost(self.shard)
        _background(self.hub._outage_over(self.shard))


class _ServerWatch:
    """Tells which of the layer's Redis servers restarted since the last look."""

    def __init__(self, layer: Any) -> None:
        from channels_redis.utils import create_pool
        from redis.asyncio import Redis

        self.clients = [
            Redis(connection_pool=create_pool(host)) for host in layer_hosts(layer)
        ]
        self.run_ids: list[str | None] = [None] * len(self.clients)
        self.down = [False] * len(self.clients)

    async def restarted(self) -> list[int]:
        found = []
        for index, client in enumerate(self.clients):
            try:
                run_id = (await client.info("server"))["run_id"]
            except unreachable():
                self.down[index] = True
                continue
            was, self.run_ids[index] = self.run_ids[index], run_id
            if (was is not None and was != run_id) or self.down[index]:
                found.append(index)
            self.down[index] = False
        return found

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


async def dispatch_local(message: dict[str, Any]) -> None:
    """Deliver to this process's hubs (no layer, or a process-local one)."""
    running = asyncio.get_running_loop()
    for loop, hub in list(_hubs.items()):
        if loop is running:
            await hub.dispatch(Event(message))
        elif loop.is_running() and not loop.is_closed():
            loop.call_soon_threadsafe(_background, hub.dispatch(Event(message)))


_dispatching: set[asyncio.Future] = set()


def _background(coro: Any) -> None:
    task = asyncio.ensure_future(coro)
    _dispatching.add(task)
    task.add_done_callback(_dispatching.discard)


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
