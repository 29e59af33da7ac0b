"""``RealtimeClient``: the asyncio client of protocol v1 (docs/protocol.md).

It keeps one WebSocket open (reconnecting with backoff), answers the heartbeat,
resubscribes every group from its position after each welcome, and queues what is
sent while offline. All bookkeeping runs in one reader task: frames are handled in
the order they arrive, and every outgoing frame goes through one writer queue.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from realtime import status
from realtime.client.errors import ClientClosed, ClientError, RecoveryFailed
from realtime.client.events import _END, Event, Subscription
from realtime.client.sync import SyncClient

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

logger = logging.getLogger(__name__)

State = Literal["connecting", "open", "reconnecting", "closed"]

# Close codes that mean "come back right away" (shutting down, slow consumer).
PROMPT_CLOSE_CODES = frozenset(
    {status.WS_4503_SHUTTING_DOWN, status.WS_4507_SLOW_CONSUMER}
)
# Subscribe failures that say nothing about the subscribe itself: the same subscribe
# can succeed later, so it is sent again after a backoff.
TRANSIENT_SUBSCRIBE_CODES = frozenset(
    {
        "server_error",
        "unavailable",
        "rate_limited",
        "shutting_down",
        "timeout",
        "connection_lost",
    }
)

TokenSource = str | Callable[[], str | Awaitable[str]]
Headers = Mapping[str, str]


def backoff_delay(
    attempt: int,
    *,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    random: Callable[[], float] = random.random,
) -> float:
    """Seconds before reconnect attempt ``attempt`` (from 0): full jitter, a uniform
    pick in [0, min(max_delay, base_delay * 2 ** attempt))."""
    ceiling = min(max_delay, base_delay * 2 ** max(0, attempt))
    return random() * ceiling


def _websocket_url(url: str) -> str:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("ws", "wss"):
        return url
    if scheme in ("http", "https"):
        return "ws" + url[4:]
    raise ValueError(f"expected a ws://, wss://, http:// or https:// URL, got {url!r}")


def _require_websockets() -> None:
    try:
        import websockets.asyncio.client  # noqa: F401
    except ImportError:
        raise ImportError(
            "realtime.client needs the websockets package (13 or later): "
            "pip install 'django-realtime-events[client]'"
        ) from None


async def _resolve(value: Any) -> Any:
    if callable(value):
        value = value()
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        value = await value
    return value


@dataclass
class _Request:
    future: asyncio.Future[Any]
    timer: asyncio.TimerHandle | None = None
    sent: bool = False


@dataclass
class _Channel:
    """The client's view of one group: position, events held ahead of a gap, and
    the subscriptions that read it."""

    group: str
    seq: int | None
    epoch: str | None
    subs: list[Subscription] = field(default_factory=list)
    pending: dict[int, dict[str, Any]] = field(default_factory=dict)
    resyncing: bool = False
    acked: bool = False
    attempt: int = 0  # the latest rt.subscribe sent; older answers are stale
    failures: int = 0  # consecutive transient failures: the backoff exponent
    retry: asyncio.TimerHandle | None = None
    ready: asyncio.Future[dict[str, Any]] | None = None


class RealtimeClient:
    """``async with RealtimeClient(url, token=...) as client:`` (see docs/client.md)."""

    def __init__(
        self,
        url: str,
        *,
        token: TokenSource | None = None,
        ticket_url: str | None = None,
        ticket_headers: Headers | Callable[[], Any] | None = None,
        get_ticket: Callable[[], str | Awaitable[str]] | None = None,
        headers: Headers | None = None,
        origin: str | None = None,
        events: Mapping[str, int] | None = None,
        reconnect_delay: float = 0.5,
        max_reconnect_delay: float = 30.0,
        max_reconnect_attempts: int | None = None,
        stable_after: float = 10.0,
        connect_timeout: float = 10.0,
        heartbeat_grace: float = 5.0,
        request_timeout: float = 10.0,
        queue_size: int = 100,
        queue_overflow: Literal["drop-oldest", "reject"] = "drop-oldest",
        typing_event: str = "typing",
        typing_interval: float = 3.0,
        max_size: int | None = 16 * 1024 * 1024,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.url = _websocket_url(url)
        self.token, self.ticket_url = token, ticket_url
        self.ticket_headers, self.get_ticket = ticket_headers, get_ticket
        self.headers, self.origin = headers, origin
        self.hello_events = events
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.max_reconnect_attempts = max_reconnect_attempts
        self.stable_after, self.connect_timeout = stable_after, connect_timeout
        self.heartbeat_grace, self.request_timeout = heartbeat_grace, request_timeout
        self.queue_size, self.queue_overflow = queue_size, queue_overflow
        self.typing_event, self.typing_interval = typing_event, typing_interval
        self.max_size, self._random = max_size, random

        self.state: State = "closed"
        self.welcome: dict[str, Any] | None = None
        self.user: dict[str, Any] | None = None
        self.event_versions: dict[str, int] | None = None
        #: Consecutive failed connection attempts (reset once a connection is stable).
        self.attempt = 0
        #: Connections that reached "open" so far (more than one: it reconnected).
        self.connections = 0
        self._channels: dict[str, _Channel] = {}
        self._inbox: Subscription | None = None
        self._queue: deque[tuple[dict[str, Any], str | None]] = deque()
        self._requests: dict[str, _Request] = {}
        self._ids = itertools.count(1)
        self._typing_sent: dict[str, float] = {}
        self._ws: ClientConnection | None = None
        self._out: asyncio.Queue[str] | None = None
        self._ready = False
        self._wanted = False
        self._runner: asyncio.Task[None] | None = None
        self._waiters: list[asyncio.Future[dict[str, Any]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keep: set[asyncio.Task[Any]] = set()
        self._ready_since: float | None = None
        self._last_error: BaseException | None = None
        self._failure: ClientClosed | None = None

    @classmethod
    def sync(cls, url: str, **options: Any) -> SyncClient:
        """A blocking client for scripts: ``with RealtimeClient.sync(url) as c:``
        (its own event loop runs in a thread)."""
        return SyncClient(url, client_class=cls, **options)

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> RealtimeClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> dict[str, Any]:
        """Connect (if not already) and return the welcome once frames flow. Raises
        :class:`ClientClosed` when the client gives up (4401, 4403, attempt cap)."""
        if self.state == "open" and self.welcome is not None:
            return self.welcome
        _require_websockets()
        waiter: asyncio.Future[dict[str, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append(waiter)
        if self._runner is None or self._runner.done():
            self._wanted, self._failure, self.attempt = True, None, 0
            self._runner = asyncio.create_task(self._run(), name="realtime-client")
        return await waiter

    async def close(self) -> None:
        """Close for good: requests waiting for a reply raise ``closed``,
        subscriptions stop. ``connect()`` starts again."""
        self._wanted = False
        runner, self._runner = self._runner, None
        if runner is not None and not runner.done():
            runner.cancel()
            try:
                await runner
            except (asyncio.CancelledError, Exception):
                pass
        self._set_state("closed")
        error = ClientClosed("client closed", close_code=status.WS_1000_NORMAL_CLOSURE)
        self._failure = error  # until connect() is called again
        self._end(error, terminal=False)

    def _end(self, error: ClientClosed, *, terminal: bool) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(error)
        self._waiters = []
        for request in list(self._requests.values()):
            self._fail_request(request, error)
        self._requests.clear()
        self._queue.clear()
        channels = list(self._channels.values())
        self._channels.clear()
        for channel in channels:
            self._clear_retry(channel)
            if channel.ready is not None and not channel.ready.done():
                channel.ready.set_exception(error)
                channel.ready.exception()  # read: subscribe() may no longer wait
            for sub in channel.subs:
                sub._put(error if terminal else _END)
        if self._inbox is not None:
            self._inbox._put(error if terminal else _END)
            self._inbox = None

    def _set_state(self, state: State) -> None:
        if state != self.state:
            logger.debug("realtime client %s -> %s", self.state, state)
            self.state = state

    async def _run(self) -> None:
        auth_failures = 0
        while self._wanted:
            self._set_state("connecting")
            code, terminal, stable = 1006, False, False
            error: BaseException | None = None
            try:
                ws = await self._open_socket()
            except ClientError as exc:
                # Refused by the ticket endpoint (signed out) or by the handshake
                # (foreign Origin, unknown path): asking again will not help.
                error = exc
                terminal = exc.code in ("handshake_refused", "not_authenticated")
                if exc.code == "not_authenticated":
                    code = status.WS_4401_NOT_AUTHENTICATED
            except Exception as exc:  # refused connection, DNS, handshake errors
                error = exc
            else:
                started = time.monotonic()
                try:
                    code = await self._serve(ws)
                finally:
                    ready_since = self._teardown()
                    await self._close_socket(ws)
                error = self._last_error
                stable = (
                    ready_since is not None
                    and time.monotonic() - ready_since >= self.stable_after
                )
                logger.debug(
                    "connection ended with %s after %.1f s",
                    code,
                    time.monotonic() - started,
                )
            if not self._wanted:
                return
            if stable:
                self.attempt, auth_failures = 0, 0
            if code == status.WS_4403_FORBIDDEN:
                terminal = True
            elif code == status.WS_4401_NOT_AUTHENTICATED:
                auth_failures += 1
                # One fresh credential may fix it (an expired ticket); a second
                # refusal before a connection proved stable means it will not.
                if not self._can_refresh_auth() or auth_failures > 1:
                    terminal = True
            if (
                not terminal
                and self.max_reconnect_attempts is not None
                and self.attempt >= self.max_reconnect_attempts
            ):
                terminal = True
            if terminal:
                self._wanted = False
                self._set_state("closed")
                self._failure = ClientClosed(
                    f"connection closed ({code}): {error or 'no retry'}",
                    close_code=code,
                    error=error,
                    code=getattr(error, "code", None) or "closed",
                )
                self._end(self._failure, terminal=True)
                return
            prompt = code in PROMPT_CLOSE_CODES or code == 4401
            delay = self._backoff(0 if prompt else self.attempt)
            self.attempt += 1
            self._set_state("reconnecting")
            logger.info(
                "realtime connection lost (%s); reconnecting in %.2f s", code, delay
            )
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(
            attempt,
            base_delay=self.reconnect_delay,
            max_delay=self.max_reconnect_delay,
            random=self._random,
        )

    def _can_refresh_auth(self) -> bool:
        return bool(self.get_ticket or self.ticket_url or callable(self.token))

    async def _open_socket(self) -> ClientConnection:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        url = self.url
        ticket = await self._fetch_ticket()
        if ticket is not None:
            separator = "&" if "?" in url else "?"
            url += separator + urllib.parse.urlencode({"ticket": ticket})
        try:
            return await connect(
                url,
                additional_headers=dict(self.headers or {}),
                origin=self.origin,  # type: ignore[arg-type]
                open_timeout=self.connect_timeout,
                close_timeout=2,
                ping_interval=None,  # the protocol has its own heartbeat
                max_size=self.max_size,
            )
        except InvalidStatus as exc:
            code = exc.response.status_code
            # The server refused this URL (a foreign Origin, an unknown path):
            # asking again will not change that. 408/429/5xx are passing troubles.
            if 400 <= code < 500 and code not in (408, 429):
                raise ClientError(
                    f"handshake refused: HTTP {code}", code="handshake_refused"
                ) from exc
            raise

    async def _fetch_ticket(self) -> str | None:
        if self.get_ticket is not None:
            return str(await _resolve(self.get_ticket))
        if not self.ticket_url:
            return None
        headers = {"Accept": "application/json"}
        headers.update(await _resolve(self.ticket_headers) or {})
        request = urllib.request.Request(
            self.ticket_url, data=b"", headers=headers, method="POST"
        )

        def fetch() -> Any:
            try:
                with urllib.request.urlopen(request, timeout=self.connect_timeout) as r:
                    return json.loads(r.read())
            except urllib.error.HTTPError as exc:
                if exc.code in (401, 403):
                    raise ClientError(
                        f"ticket endpoint refused: HTTP {exc.code}",
                        code="not_authenticated",
                    ) from None
                raise ClientError(
                    f"ticket endpoint failed: HTTP {exc.code}", code="ticket_failed"
                ) from None
            except (OSError, ValueError) as exc:
                raise ClientError(
                    f"ticket endpoint failed: {exc}", code="ticket_failed"
                ) from None

        body = await asyncio.to_thread(fetch)
        if not isinstance(body, dict) or not isinstance(body.get("ticket"), str):
            raise ClientError(
                "ticket endpoint answered without a ticket", code="ticket_failed"
            )
        return body["ticket"]

    async def _serve(self, ws: ClientConnection) -> int:
        """Read frames until the connection ends; return its close code."""
        from websockets.exceptions import ConnectionClosed

        self._ws, self._ready, self._last_error = ws, False, None
        self.welcome = None
        self._out = asyncio.Queue()
        writer = asyncio.create_task(self._write(ws, self._out))
        deadline = time.monotonic() + self.connect_timeout
        try:
            while True:
                heartbeat = self._heartbeat()
                if self._ready and isinstance(heartbeat, int | float) and heartbeat > 0:
                    timeout: float | None = heartbeat + self.heartbeat_grace
                elif self._ready:
                    timeout = None
                else:
                    timeout = max(0.0, deadline - time.monotonic())
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout)
                except TimeoutError:
                    # Nothing from the server: presumed half-open. Do not wait for a
                    # close handshake that may never come.
                    return 4408 if self._ready else 4008
                except ConnectionClosed as exc:
                    return exc.rcvd.code if exc.rcvd is not None else 1006
                if writer.done():
                    return 1006
                self._on_message(raw)
        finally:
            writer.cancel()

    def _heartbeat(self) -> Any:
        return (self.welcome or {}).get("heartbeat")

    async def _write(self, ws: ClientConnection, out: asyncio.Queue[str]) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                await ws.send(await out.get())
        except ConnectionClosed:
            pass

    async def _close_socket(self, ws: ClientConnection) -> None:
        try:
            await asyncio.wait_for(ws.close(), 3)
        except Exception:
            ws.transport.abort()

    def _teardown(self) -> float | None:
        """Forget the socket; return when it became ready (None if it never did)."""
        ready_since = self._ready_since if self._ready else None
        self._ready_since = None
        self._ws, self._out, self._ready = None, None, False
        for task in list(self._tasks):
            task.cancel()
        for channel in self._channels.values():
            channel.resyncing = False
            channel.pending.clear()
            # The next welcome resubscribes every channel: a retry must not add one.
            self._clear_retry(channel)
        # A sent frame's fate is unknown once the socket is gone: never resend it.
        lost = ClientError("connection lost before the reply", code="connection_lost")
        for frame_id, request in list(self._requests.items()):
            if request.sent:
                del self._requests[frame_id]
                self._fail_request(request, lost)
        return ready_since

    # -- receiving -------------------------------------------------------------------

    def _on_message(self, raw: str | bytes) -> None:
        if not isinstance(raw, str):
            return  # the server only sends text
        try:
            frame = json.loads(raw)
        except ValueError:
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            return
        kind = frame["type"]
        if kind == "rt.welcome":
            self._on_welcome(frame.get("data") or {})
        elif kind == "rt.ping":
            # The pong echoes the ping's id and data: the nonce proves receipt.
            pong: dict[str, Any] = {"type": "rt.pong"}
            if frame.get("id") is not None:
                pong["id"] = frame["id"]
            if "data" in frame:
                pong["data"] = frame["data"]
            self._transmit(pong)
        elif kind in ("rt.ack", "rt.pong"):
            self._settle(frame, ok=True)
        elif kind == "rt.error":
            if not self._settle(frame, ok=False):
                # Not a reply: usually followed by a close, which it explains.
                self._last_error = ClientError.from_frame(frame)
                logger.warning("realtime server error: %s", self._last_error)
        elif kind in ("rt.presence.join", "rt.presence.leave"):
            channel = self._channels.get(frame.get("group") or "")
            for sub in channel.subs if channel else ():
                if sub.presence_events:
                    sub._put(Event.from_frame(frame))
        elif kind == "rt.reset":
            self._on_reset(frame)
        elif kind.startswith("rt."):
            pass  # a newer server's protocol frame: never an application event
        elif isinstance(frame.get("group"), str):
            self._on_group_event(frame)
        elif self._inbox is not None:
            self._inbox._put(Event.from_frame(frame))

    def _on_welcome(self, welcome: dict[str, Any]) -> None:
        self.welcome = welcome
        self.user = welcome.get("user")
        if self.token is not None and not self.user:
            self._spawn(self._authenticate())
        else:
            self._on_ready()

    async def _authenticate(self) -> None:
        token = await _resolve(self.token)
        try:
            ack = await self._request("rt.auth", {"token": token}, direct=True)
        except ClientError as exc:
            # A refused token closes the socket (4401); the close decides what next.
            if exc.code != "connection_lost":
                self._last_error = exc
            return
        self.user = (ack or {}).get("user")
        self._on_ready()

    def _on_ready(self) -> None:
        if self._ws is None:
            return
        self._ready_since = time.monotonic()
        if self.hello_events:
            self._spawn(self._hello())
        for channel in self._channels.values():
            self._send_subscribe(channel)
        while self._queue:
            frame, frame_id = self._queue.popleft()
            if frame_id is not None and frame_id not in self._requests:
                continue  # timed out while queued
            self._transmit(frame)
        self._ready = True
        self.connections += 1
        self._set_state("open")
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(self.welcome or {})
        self._waiters = []

    async def _hello(self) -> None:
        try:
            ack = await self._request(
                "rt.hello", {"events": dict(self.hello_events or {})}, direct=True
            )
        except ClientError as exc:
            logger.warning("rt.hello failed: %s", exc)
            return
        self.event_versions = (ack or {}).get("events")

    def _settle(self, frame: dict[str, Any], *, ok: bool) -> bool:
        request = self._requests.pop(str(frame.get("id")), None)
        if request is None:
            return False
        if request.timer is not None:
            request.timer.cancel()
        if not request.future.done():
            if ok:
                request.future.set_result(frame.get("data"))
            else:
                request.future.set_exception(ClientError.from_frame(frame))
        return True

    def _fail_request(self, request: _Request, error: ClientError) -> None:
        if request.timer is not None:
            request.timer.cancel()
        if not request.future.done():
            request.future.set_exception(error)

    def _on_group_event(self, frame: dict[str, Any]) -> None:
        channel = self._channels.get(frame["group"])
        if channel is None:  # e.g. the personal group user.<pk>
            if self._inbox is not None:
                self._inbox._put(Event.from_frame(frame))
            return
        seq = frame.get("seq")
        if not isinstance(seq, int) or channel.seq is None:
            self._deliver(channel, frame)
            return
        if seq <= channel.seq:
            return  # already delivered
        if seq > channel.seq + 1 or channel.resyncing:
            # The server fills gaps itself; should one still show, hold what came
            # ahead of it and let history fill it in order.
            channel.pending[seq] = frame
            if not channel.resyncing:
                channel.resyncing = True
                self._send_subscribe(channel)
            self._drain(channel)
            return
        channel.seq = seq
        self._deliver(channel, frame)
        self._drain(channel)

    def _drain(self, channel: _Channel) -> None:
        if channel.seq is None:
            return
        for seq in [s for s in channel.pending if s <= channel.seq]:
            del channel.pending[seq]
        while (frame := channel.pending.pop(channel.seq + 1, None)) is not None:
            channel.seq = frame["seq"]
            self._deliver(channel, frame)

    def _deliver(self, channel: _Channel, frame: dict[str, Any]) -> None:
        event = Event.from_frame(frame, channel.epoch)
        for sub in channel.subs:
            sub._put(event)

    def _on_reset(self, frame: dict[str, Any]) -> None:
        group = frame.get("group")
        if not isinstance(group, str):
            return
        data = frame.get("data")
        if not isinstance(data, dict):
            data = {}
        channel = self._channels.get(group)
        since = channel.seq if channel else None
        if channel is not None:
            self._set_position(channel, data.get("epoch"), data.get("seq"))
        self._recovery_failed(
            channel,
            RecoveryFailed(
                group,
                since=since,
                seq=data.get("seq"),
                epoch=data.get("epoch"),
                reason=str(data.get("reason") or "reset"),
            ),
        )

    def _set_position(self, channel: _Channel, epoch: Any, seq: Any) -> None:
        # Held events belong to the old position (maybe an old epoch, whose seqs
        # name other events): keeping them would deliver them in place of new ones.
        channel.epoch = epoch if isinstance(epoch, str) else None
        channel.seq = seq if isinstance(seq, int) else None
        channel.pending.clear()

    def _recovery_failed(
        self, channel: _Channel | None, failure: RecoveryFailed
    ) -> None:
        logger.warning("%s", failure)
        if channel is not None:
            for sub in channel.subs:
                sub._put(failure)
        elif self._inbox is not None:
            self._inbox._put(failure)

    # -- subscriptions ---------------------------------------------------------------

    async def subscribe(
        self,
        group: str,
        *,
        since: int | None = None,
        epoch: str | None = None,
        presence: bool = False,
    ) -> Subscription:
        """Join ``group`` and return once the server acked it (connecting first if
        needed). Transient refusals are retried with backoff; others raise
        :class:`ClientError` with the server's code (``forbidden``, ...). With
        ``since``/``epoch`` the missed events are replayed first, or the iterator
        raises :class:`RecoveryFailed` first."""
        if not isinstance(group, str) or not group:
            raise ValueError("group must be a non-empty string")
        if self._failure is not None:
            raise self._failure
        loop = asyncio.get_running_loop()
        channel = self._channels.get(group)
        sub = Subscription(self, group, presence=presence)
        if channel is None:
            channel = _Channel(group, since, epoch, ready=loop.create_future())
            self._channels[group] = channel
            channel.subs.append(sub)
            if self._ready:
                self._send_subscribe(channel)
            elif self._runner is None:
                self._spawn_connect()
        else:
            channel.subs.append(sub)
        assert channel.ready is not None
        sub.ack = await asyncio.shield(channel.ready)
        return sub

    def _spawn_connect(self) -> None:
        _require_websockets()
        task = asyncio.create_task(self.connect())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def events(self) -> Subscription:
        """Events of groups this client did not subscribe to (the personal group
        ``user.<pk>`` of ``notify_user()``), and their resets. Collected from the
        first call on."""
        if self._inbox is None:
            self._inbox = Subscription(self, None)
        return self._inbox

    def positions(self) -> dict[str, dict[str, Any]]:
        """Each subscribed group's position: ``{group: {"seq", "epoch"}}``."""
        return {
            group: {"seq": channel.seq, "epoch": channel.epoch}
            for group, channel in self._channels.items()
        }

    def _send_subscribe(self, channel: _Channel) -> None:
        # Always from the channel's current position, so a retry or a resubscribe
        # after a reconnect still recovers what was missed.
        self._clear_retry(channel)
        channel.attempt += 1
        attempt, since, epoch = channel.attempt, channel.seq, channel.epoch
        data: dict[str, Any] = {"group": channel.group}
        if since is not None:
            data["since"] = since
            if epoch is not None:
                data["epoch"] = epoch

        async def run() -> None:
            try:
                ack = await self._request("rt.subscribe", data, direct=True)
            except ClientError as exc:
                self._on_subscribe_error(channel, attempt, exc)
            else:
                self._on_subscribed(channel, since, epoch, ack or {})

        self._spawn(run(), keep=True)

    def _on_subscribed(
        self, channel: _Channel, since: int | None, epoch: str | None, ack: dict
    ) -> None:
        if self._channels.get(channel.group) is not channel:
            return  # unsubscribed meanwhile
        channel.resyncing, channel.failures = False, 0
        ack_epoch = ack.get("epoch")
        # `since` counts events of `epoch`; in another epoch the same numbers name
        # other events, so a changed epoch is a failed recovery whatever the ack says.
        epoch_changed = epoch is not None and ack_epoch != epoch
        if since is not None and (ack.get("recovered") is False or epoch_changed):
            self._set_position(channel, ack_epoch, ack.get("seq"))
            failure = RecoveryFailed(
                channel.group, since=since, seq=ack.get("seq"), epoch=ack_epoch
            )
            self._recovery_failed(channel, failure)
        elif since is None:
            self._set_position(channel, ack_epoch, ack.get("seq"))
        else:
            channel.epoch = ack_epoch  # recovered: the replay follows the ack
        channel.acked = True
        if channel.ready is not None and not channel.ready.done():
            channel.ready.set_result(ack)
        self._drain(channel)

    def _on_subscribe_error(
        self, channel: _Channel, attempt: int, error: ClientError
    ) -> None:
        if self._channels.get(channel.group) is not channel:
            return
        if attempt != channel.attempt:
            return  # a newer subscribe is on its way
        transient = error.code in TRANSIENT_SUBSCRIBE_CODES
        if transient and (error.code == "connection_lost" or not self._ready):
            return  # the next welcome resubscribes every channel
        if transient and (
            self.max_reconnect_attempts is None
            or channel.failures < self.max_reconnect_attempts
        ):
            delay = self._backoff(channel.failures)
            channel.failures += 1
            logger.info(
                "subscribe to %s failed (%s); retrying in %.2f s",
                channel.group,
                error.code,
                delay,
            )

            def retry() -> None:
                channel.retry = None
                if self._ready and self._channels.get(channel.group) is channel:
                    self._send_subscribe(channel)

            channel.retry = asyncio.get_running_loop().call_later(delay, retry)
            return
        del self._channels[channel.group]
        # A refused gap fill leaves the server's earlier subscription: leave it.
        if channel.acked and self._ready:
            self._spawn(self._quiet_request("rt.unsubscribe", {"group": channel.group}))
        if channel.ready is not None and not channel.ready.done():
            channel.ready.set_exception(error)
        else:
            for sub in channel.subs:
                sub._put(error)

    def _clear_retry(self, channel: _Channel) -> None:
        if channel.retry is not None:
            channel.retry.cancel()
            channel.retry = None

    def _position(self, group: str) -> tuple[int | None, str | None]:
        """(last seq, epoch) of ``group``; (None, None) when not subscribed."""
        channel = self._channels.get(group)
        return (channel.seq, channel.epoch) if channel else (None, None)

    def _remove_subscription(self, sub: Subscription) -> None:
        channel = self._channels.get(sub.group or "")
        if channel is None or sub not in channel.subs:
            return
        channel.subs.remove(sub)
        if channel.subs:
            return
        del self._channels[channel.group]
        self._clear_retry(channel)
        if self._ready:
            self._spawn(self._quiet_request("rt.unsubscribe", {"group": channel.group}))

    async def _quiet_request(self, type: str, data: dict[str, Any]) -> None:
        try:
            await self._request(type, data, direct=True)
        except ClientError as exc:
            logger.debug("%s failed: %s", type, exc)

    # -- sending ---------------------------------------------------------------------

    async def send(
        self,
        type: str,
        data: Any = None,
        *,
        v: int | None = None,
        group: str | None = None,
    ) -> bool:
        """Send an event without waiting for a reply: now when open (returns True),
        else queued and sent in order after the next welcome (returns False)."""
        frame = self._frame(type, data, v=v, group=group)
        if self._failure is not None:
            raise self._failure
        if self._ready:
            self._transmit(frame)
            return True
        self._enqueue(frame, None)
        if self._runner is None:
            self._spawn_connect()
        return False

    async def request(
        self,
        type: str,
        data: Any = None,
        *,
        timeout: float | None = None,
        v: int | None = None,
    ) -> Any:
        """Send an event with an ``id``; return the ``rt.ack`` data. Raises
        :class:`ClientError` with the ``rt.error`` code, or ``timeout`` (counted from
        the call, queue time included), ``connection_lost`` (sent, the socket dropped:
        never resent), ``queue_overflow``, ``closed``."""
        return await self._request(type, data, timeout=timeout, v=v)

    async def presence(self, group: str, *, timeout: float | None = None) -> Any:
        """Who is in ``group`` (subscribe first): ``{group, members, anonymous,
        connections}``."""
        return await self._request("rt.presence", {"group": group}, timeout=timeout)

    async def typing(self, group: str, data: dict[str, Any] | None = None) -> bool:
        """Send ``typing_event`` to ``group``, at most once per ``typing_interval``
        per group and only while open (a stale "is typing" is never queued)."""
        if not self._ready:
            return False
        now = time.monotonic()
        last = self._typing_sent.get(group)
        if last is not None and now - last < self.typing_interval:
            return False
        self._typing_sent[group] = now
        self._transmit(self._frame(self.typing_event, dict(data or {}), group=group))
        return True

    async def ping(self, *, timeout: float | None = None) -> float:
        """Round trip to the server in seconds."""
        started = time.monotonic()
        await self._request("rt.ping", {}, timeout=timeout)
        return time.monotonic() - started

    @property
    def queued(self) -> int:
        """Frames waiting for a connection."""
        return len(self._queue)

    async def _request(
        self,
        type: str,
        data: Any,
        *,
        timeout: float | None = None,
        v: int | None = None,
        direct: bool = False,
    ) -> Any:
        if self._failure is not None:
            raise self._failure
        frame_id = f"p{next(self._ids)}"
        frame = self._frame(type, data, v=v, frame_id=frame_id)
        loop = asyncio.get_running_loop()
        request = _Request(loop.create_future())
        seconds = self.request_timeout if timeout is None else timeout

        def expire() -> None:
            if self._requests.get(frame_id) is request:
                del self._requests[frame_id]
                self._fail_request(
                    request,
                    ClientError(
                        f"no reply to {type} within {seconds} s", code="timeout"
                    ),
                )

        request.timer = loop.call_later(seconds, expire)
        self._requests[frame_id] = request
        if self._ready or (direct and self._ws is not None):
            self._transmit(frame)
        else:
            self._enqueue(frame, frame_id)
            if self._runner is None:
                self._spawn_connect()
        try:
            return await request.future
        finally:
            if self._requests.get(frame_id) is request:  # cancelled by the caller
                del self._requests[frame_id]
                if request.timer is not None:
                    request.timer.cancel()

    def _frame(
        self,
        type: str,
        data: Any,
        *,
        v: int | None = None,
        group: str | None = None,
        frame_id: str | None = None,
    ) -> dict[str, Any]:
        if not isinstance(type, str) or not type:
            raise ValueError("type must be a non-empty string")
        frame: dict[str, Any] = {"type": type}
        if v is not None:
            frame["v"] = v
        if frame_id is not None:
            frame["id"] = frame_id
        if group is not None:
            frame["group"] = group
        frame["data"] = {} if data is None else data
        return frame

    def _enqueue(self, frame: dict[str, Any], frame_id: str | None) -> None:
        if len(self._queue) >= self.queue_size:
            error = ClientError(
                f"offline queue is full ({self.queue_size} frames)",
                code="queue_overflow",
            )
            if self.queue_overflow == "reject" or self.queue_size <= 0:
                if frame_id is not None:
                    self._fail_request(self._requests.pop(frame_id), error)
                    return
                raise error
            _, dropped_id = self._queue.popleft()
            dropped = self._requests.pop(dropped_id, None) if dropped_id else None
            if dropped is not None:
                self._fail_request(dropped, error)
            logger.warning("offline queue full: dropped the oldest frame")
        self._queue.append((frame, frame_id))

    def _transmit(self, frame: dict[str, Any]) -> None:
        if self._out is None:
            return
        frame_id = frame.get("id")
        if frame_id is not None and (request := self._requests.get(frame_id)):
            request.sent = True
        self._out.put_nowait(json.dumps(frame, separators=(",", ":")))

    def _spawn(self, coro: Any, *, keep: bool = False) -> None:
        """Run ``coro`` beside the reader. Tasks are cancelled with the socket
        unless ``keep`` (a subscribe must see its connection_lost to be redone)."""
        task = asyncio.get_running_loop().create_task(coro)
        if not keep:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._keep.add(task)
            task.add_done_callback(self._keep.discard)
