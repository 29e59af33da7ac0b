"""RealtimeConsumer: the protocol v1 endpoint users subclass.

The protocol handlers here own the bookkeeping (auth, acks, limits, subscriptions,
recovery, presence); users declare ``permission_classes``, ``subscriptions`` and
``@handler`` methods and override small hooks (``on_connect``, ``on_disconnect``).
A client's ``type`` is only ever looked up in the handler table built from
``@handler`` declarations: it is never turned into a method name.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import types
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser

from realtime import ephemeral, history, logs, metrics, presence, status, wire
from realtime import exceptions as exc
from realtime.auth import FirstMessageAuthenticator, user_summary
from realtime.groups import (
    compile_patterns,
    match_patterns,
    user_group,
    validate_group_name,
)
from realtime.hub import Event, get_hub
from realtime.permissions import call_check
from realtime.schema import registry
from realtime.settings import realtime_settings
from realtime.throttling import TokenBucket

logger = logging.getLogger(__name__)
PROTOCOL_VERSION = 1
# Errors caused by what the client sent; too many of them close with 4400.
CLIENT_FAULTS = {
    "bad_json",
    "bad_envelope",
    "unknown_type",
    "invalid",
    "forbidden",
    "not_authenticated",
}


def handler(
    type: str, *, permission_classes: list | None = None
) -> Callable[[Callable], Callable]:
    """Mark a consumer method as the handler of client event ``type``."""

    def decorator(fn: Callable) -> Callable:
        fn._realtime_handler = (type, permission_classes)  # type: ignore[attr-defined]
        return fn

    return decorator


class Message:
    """A validated client event, as a handler receives it."""

    __slots__ = ("consumer", "data", "id", "type", "v")

    def __init__(
        self, type: str, v: int, id: str | None, data: dict, consumer: RealtimeConsumer
    ) -> None:
        self.type, self.v, self.id, self.data, self.consumer = (
            type,
            v,
            id,
            data,
            consumer,
        )

    @property
    def user(self) -> Any:
        return self.consumer.user


class Subscription:
    __slots__ = ("buffer", "group", "last_seq", "presence")

    def __init__(self, group: str) -> None:
        self.group = group
        self.last_seq = 0
        self.buffer: list[Event] | None = []  # events held while recovering
        self.presence = False


class RealtimeConsumer(AsyncConsumer):
    """A WebSocket endpoint speaking the realtime protocol (see docs/protocol.md)."""

    #: None: REALTIME["AUTHENTICATORS"]; a list overrides it for this consumer.
    authenticators: list | None = None
    #: None: REALTIME["DEFAULT_PERMISSION_CLASSES"]. Checked at connect.
    permission_classes: list | None = None
    #: Group patterns a client may join, each with its permission classes.
    subscriptions: dict[str, list] = {}
    #: Client events relayed to a group the sender is subscribed to (typing
    #: indicators): event type -> permission classes. No history, no echo.
    ephemeral_events: dict[str, list] = {}

    _handlers: dict[str, tuple[str, list | None]] = {}
    # Set while a send waits on the server's flow control (see _write).
    _writer: asyncio.Future | None = None
    _outbox: deque[dict] | None = None
    # Set once the connection is found too slow: it is being closed with 4507.
    _slow = False
    # daphne's frame writer (see realtime.wire): False until looked up, None if none.
    _direct: Callable[[bytes], bool] | bool | None = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[str, tuple[str, list | None]] = {}
        for klass in reversed(cls.__mro__):
            for name, attr in vars(klass).items():
                spec = getattr(attr, "_realtime_handler", None)
                if spec is not None:
                    handlers[spec[0]] = (name, spec[1])
        cls._handlers = handlers
        cls._compiled_subscriptions = None

    # -- hooks ----------------------------------------------------------------------

    async def on_connect(self) -> None:
        """Called once the connection is accepted and authenticated. Raise
        PermissionDenied to close it with 4403."""

    def is_subscribed(self, group: str) -> bool:
        """Return True if this connection is subscribed to ``group``."""
        return group in self.subs

    async def on_subscribe(self, group: str) -> None:
        """Called after the connection joined ``group`` (ack and replay sent)."""

    async def on_unsubscribe(self, group: str) -> None:
        """Called after the connection left ``group`` (also when it closes)."""

    @property
    def presence_groups(self) -> list[str]:
        """Groups where this connection is listed in presence (leases to renew)."""
        return [group for group, sub in self.subs.items() if sub.presence]

    def get_presence_meta(self) -> dict[str, Any]:
        """Return extra fields listed with this user in presence (e.g. an avatar)."""
        return {}

    async def on_disconnect(self, code: int | None) -> None:
        """Called after the connection closed and its subscriptions were dropped."""

    def get_authenticators(self) -> list:
        classes = self.authenticators
        if classes is None:
            classes = realtime_settings.AUTHENTICATORS
        return [cls() if isinstance(cls, type) else cls for cls in classes]

    def get_permissions(self) -> list:
        classes = self.permission_classes
        if classes is None:
            classes = realtime_settings.DEFAULT_PERMISSION_CLASSES
        return [cls() for cls in classes]

    def get_subscription_patterns(self) -> list:
        compiled = type(self).__dict__.get("_compiled_subscriptions")
        if compiled is None:
            compiled = compile_patterns(self.subscriptions)
            type(self)._compiled_subscriptions = compiled
        return compiled

    async def notify(self, group: str, type: str, data: Any = None, **kw: Any) -> Any:
        """Send an event to a group (``realtime.anotify``)."""
        from realtime.notify import anotify

        return await anotify(group, type, data, **kw)

    async def send_event(
        self,
        type: str,
        data: Any = None,
        *,
        v: int | None = None,
        id: str | None = None,
    ) -> None:
        """Send a validated event to this connection only."""
        from realtime.notify import dumps, prepare

        prepared = prepare(type, data, v)
        if prepared is not None and type in self.versions:
            try:
                prepared = registry.downgrade_for(
                    type, prepared[1], prepared[0], self.versions[type]
                )
            except LookupError as error:
                self.log.warning(
                    "%s not sent to connection %s: %s", type, self.connection_id, error
                )
                return
        if prepared is not None:
            frame = {"type": type, "v": prepared[0], "data": prepared[1]}
            if id is not None:
                frame["id"] = id
            metrics.frame_out(type)
            await self._send_text(dumps(frame).decode())

    # -- ASGI -----------------------------------------------------------------------

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        # No per-socket channel-layer channel: the process's hub delivers events.
        self.scope = scope
        self.base_send = send
        self.connection_id = uuid.uuid4().hex[:16]
        self.log = logs.ConnectionLog(logger, self)
        self.user = scope.get("user") or AnonymousUser()
        self.subs: dict[str, Subscription] = {}
        self.versions: dict[str, int] = {}
        self.closed = self.accepted = self.pending_auth = self._cleaned = False
        self._closing = False
        self.close_code: int | None = None
        self.sent_bytes = self.ping_bytes = self.acked_bytes = 0
        self._pings: deque[int] = deque(maxlen=32)
        self._faults = 0
        self._rate_strikes: deque[float] = deque()
        self.bucket = TokenBucket(realtime_settings.RATE, realtime_settings.BURST)
        self.hub = await get_hub()
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        try:
            await self._open()
            while not self.closed:
                message = await receive()
                if message["type"] == "websocket.receive":
                    await self._on_frame(message)
                elif message["type"] == "websocket.disconnect":
                    self.close_code = message.get("code")
                    break
        except Exception:
            self.log.exception("connection %s failed", self.connection_id)
            await self.close(exc.ServerError(), status.WS_4500_SERVER_ERROR)
        finally:
            await self._cleanup()
            try:
                await self.on_disconnect(self.close_code)
            except Exception:
                self.log.exception("on_disconnect of %s failed", self.connection_id)

    async def _open(self) -> None:
        now = time.monotonic()
        self.last_recv = now
        self.next_ping = now + realtime_settings.HEARTBEAT_INTERVAL
        self.hub.connections.add(self)
        metrics.connection_opened(self)
        try:
            user = await self._authenticate()
        except exc.NotAuthenticated as error:
            self.log.info(
                "connection %s: authentication failed (%s)",
                self.connection_id,
                error.detail,
            )
            await self.close(error, status.WS_4401_NOT_AUTHENTICATED)
            return
        if user is not None:
            self.user = user
        denied = await self._check_connect()
        if denied is not None:
            if not self.user.is_authenticated and self._first_message_auth():
                self.pending_auth = True
                self.auth_deadline = now + realtime_settings.AUTH_TIMEOUT
            else:
                await self.close(denied, denied.close_code or status.WS_4403_FORBIDDEN)
                return
        await self._accept()
        await self._send_frame(
            {
                "type": "rt.welcome",
                "data": {
                    "protocol": PROTOCOL_VERSION,
                    "connection_id": self.connection_id,
                    "heartbeat": realtime_settings.HEARTBEAT_INTERVAL,
                    "user": user_summary(self.user),
                    "auth_required": self.pending_auth,
                    "max_frame_bytes": realtime_settings.MAX_FRAME_BYTES,
                },
            }
        )
        if not self.pending_auth:
            await self._connected()

    async def _authenticate(self) -> Any | None:
        for authenticator in self.get_authenticators():
            user = await authenticator.authenticate(self)
            if user is not None:
                return user
        return None

    def _first_message_auth(self) -> FirstMessageAuthenticator | None:
        for authenticator in self.get_authenticators():
            if isinstance(authenticator, FirstMessageAuthenticator):
                return authenticator
        return None

    async def _check_connect(self) -> exc.RealtimeError | None:
        for permission in self.get_permissions():
            if not await call_check(permission.has_permission, self):
                if not self.user.is_authenticated:
                    return exc.NotAuthenticated(permission.message)
                return exc.PermissionDenied(
                    permission.message, close_code=status.WS_4403_FORBIDDEN
                )
        return None

    async def _connected(self) -> None:
        if self.user.is_authenticated:
            group = user_group(self.user)
            self.subs[group] = sub = Subscription(group)
            sub.buffer = None
            await self.hub.join(group, self)
        try:
            await self.on_connect()
        except exc.RealtimeError as error:
            await self.close(error, error.close_code or status.WS_4403_FORBIDDEN)

    async def _accept(self) -> None:
        if not self.accepted:
            self.accepted = True
            await self.base_send({"type": "websocket.accept"})

    async def close(
        self,
        error: exc.RealtimeError | None = None,
        code: int = status.WS_1000_NORMAL_CLOSURE,
    ) -> None:
        """Send ``error`` (if any) as rt.error, close with ``code`` and clean up."""
        if self.closed or self._closing:
            return
        self._closing = True  # the rt.error below must not trigger another close
        metrics.closing(error, code)
        if error is not None:
            await self._accept()
            await self._send_error(error)
        self.closed = True
        self.close_code = code
        try:
            await self.base_send({"type": "websocket.close", "code": code})
        except Exception:
            pass  # the socket is already gone
        await self._cleanup()

    async def _cleanup(self) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        self.closed = True
        self.hub.connections.discard(self)
        metrics.connection_closed(self)
        own = user_group(self.user) if self.user.is_authenticated else None
        for group, sub in list(self.subs.items()):
            try:
                await self.hub.leave(group, self)
                if sub.presence:
                    await presence.leave(self, group)
                if group != own:
                    await self.on_unsubscribe(group)
            except Exception:
                self.log.exception(
                    "leaving %s for %s failed", group, self.connection_id
                )
        self.subs.clear()

    # -- sending --------------------------------------------------------------------

    async def _send_frame(self, frame: dict) -> None:
        from realtime.notify import dumps

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
            self._outbox.append(message)
        elif frame is None or not self._write_frame(frame):
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
            # The pong to this ping proves the client read everything sent before it.
            self.ping_bytes = self.sent_bytes
            self._pings.append(self.sent_bytes)
            metrics.frame_out("rt.ping")
            return self._write(_PING)
        return False

    def _write_frame(self, frame: bytes) -> bool:
        # A group event's frame, built once per process: on daphne it goes straight
        # to the transport (realtime.wire).
        if self._direct is False:
            self._direct = wire.direct_writer(self.base_send)
        return self._direct is not None and self._direct(frame)

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

    async def _ping(self) -> None:
        # The pong to this ping proves the client read everything sent before it.
        self.ping_bytes = self.sent_bytes
        self._pings.append(self.sent_bytes)
        metrics.frame_out("rt.ping")
        # Not awaited: the hub's ticker pings every connection in turn, and a socket
        # whose send is waiting on flow control must not hold up the others.
        if self._write(_PING):
            self._too_slow()

    def _too_slow(self) -> None:
        # Close once, from a task of its own: the hub's loop does not wait for it.
        if not self._slow:
            self._slow = True
            _background(self._slow_consumer())

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
        if event.seq is not None:
            if event.seq <= sub.last_seq:
                return  # already delivered (replay and live overlap)
            sub.last_seq = event.seq
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

    async def tick(self, now: float) -> None:
        """Deadlines and heartbeat, called about once a second by the hub."""
        if self.closed:
            return
        if self.pending_auth and now > self.auth_deadline:
            await self.close(
                exc.NotAuthenticated("no rt.auth within the auth timeout"),
                status.WS_4401_NOT_AUTHENTICATED,
            )
        elif now - self.last_recv > realtime_settings.HEARTBEAT_TIMEOUT:
            await self.close(
                exc.RealtimeError(
                    "No frame from the client within the heartbeat timeout.",
                    code="heartbeat_timeout",
                ),
                status.WS_4408_HEARTBEAT_TIMEOUT,
            )
        elif now >= self.next_ping and self.accepted:
            self.next_ping = now + realtime_settings.HEARTBEAT_INTERVAL
            await self._ping()

    # -- receiving ------------------------------------------------------------------

    async def _on_frame(self, message: dict) -> None:
        self.last_recv = time.monotonic()
        text = message.get("text")
        frame_id = None
        try:
            if text is None:
                raise exc.BadEnvelope("binary frames are not supported; send JSON text")
            limit = realtime_settings.MAX_FRAME_BYTES
            if len(text) > limit or (
                len(text) * 4 > limit and len(text.encode()) > limit
            ):
                raise exc.FrameTooLarge(f"frame is over {limit} bytes")
            if not self.bucket.allow():
                await self._rate_limited()
                return
            try:
                frame = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise exc.BadJSON() from None
            _check_nesting(text, frame)
            frame_id = _frame_id(frame)
            type_, v, data = _envelope(frame)
            metrics.frame_in(type_)
            if type_.startswith("rt."):
                await self._protocol(type_, frame_id, data)
            elif self.pending_auth:
                raise _AUTH_FIRST
            elif type_ in self.ephemeral_events:
                await ephemeral.relay(
                    self, type_, v, frame_id, frame.get("group"), data
                )
            else:
                await self._application(type_, v, frame_id, data)
        except exc.RealtimeError as error:
            await self._client_error(error, frame_id)
        except Exception:
            self.log.exception("handler error on connection %s", self.connection_id)
            await self._send_error(exc.ServerError(), frame_id)

    async def _client_error(
        self, error: exc.RealtimeError, frame_id: str | None
    ) -> None:
        if error.close_code is not None:
            await self.close(error, error.close_code)
            return
        await self._send_error(error, frame_id)
        if error.code in CLIENT_FAULTS:
            self._faults += 1
            if self._faults >= realtime_settings.MAX_INVALID_FRAMES:
                await self.close(
                    exc.BadEnvelope("too many invalid frames"),
                    status.WS_4400_PROTOCOL_ABUSE,
                )

    async def _rate_limited(self) -> None:
        now = time.monotonic()
        strikes = self._rate_strikes
        strikes.append(now)
        while strikes and strikes[0] < now - 60:
            strikes.popleft()
        if len(strikes) >= realtime_settings.RATE_LIMIT_CLOSE_AFTER:
            await self.close(
                exc.RateLimited("rate limit exceeded repeatedly"),
                status.WS_4429_RATE_LIMITED,
            )
        else:
            await self._send_error(exc.RateLimited())

    async def _application(
        self, type_: str, v: int | None, frame_id: str | None, data: Any
    ) -> None:
        entry = self._handlers.get(type_)
        if entry is None or type_ not in registry:
            raise exc.UnknownType(f"unknown message type {type_[:100]!r}")
        spec = registry.get(type_, v)
        if not spec.accepts_from_client():
            raise exc.UnknownType(f"{type_!r} is not accepted from clients")
        clean = spec.validate(data)
        latest = registry.latest(type_)
        if spec.version < latest:
            upgraded = registry.upgrade(type_, clean, spec.version, latest)
            try:
                clean = registry.get(type_, latest).validate(upgraded)
            except exc.ValidationFailed as error:
                # Valid old data that upgrades to invalid new data is a server bug.
                self.log.error(
                    "upgrader of %s v%s produced invalid data: %s",
                    type_,
                    spec.version,
                    error.errors,
                )
                raise exc.ServerError() from None
        message = Message(type_, latest, frame_id, clean, self)
        method_name, permission_classes = entry
        for permission_class in permission_classes or ():
            permission = permission_class()
            if not await call_check(permission.has_message_permission, self, message):
                raise exc.PermissionDenied(permission.message)
        method = getattr(self, method_name)
        if inspect.iscoroutinefunction(method):
            result = await method(message)
        else:
            result = await database_sync_to_async(method)(message)
        await self._ack(frame_id, result)

    # -- protocol frames ------------------------------------------------------------

    async def _protocol(self, type_: str, frame_id: str | None, data: dict) -> None:
        if type_ == "rt.ping":
            await self._send_frame(
                {"type": "rt.pong", "id": frame_id, "data": data}
                if frame_id
                else {"type": "rt.pong", "data": data}
            )
        elif type_ == "rt.pong":
            if self._pings:
                self.acked_bytes = self._pings.popleft()
        elif type_ == "rt.auth":
            await self._rt_auth(frame_id, data)
        elif type_ == "rt.hello":
            await self._rt_hello(frame_id, data)
        elif self.pending_auth:
            raise _AUTH_FIRST
        elif type_ == "rt.subscribe":
            await self._rt_subscribe(frame_id, data)
        elif type_ == "rt.unsubscribe":
            group = validate_group_name(data.get("group"))
            await self._unsubscribe(group)
            await self._ack(frame_id, {"group": group})
        elif type_ == "rt.presence":
            group = validate_group_name(data.get("group"))
            sub = self.subs.get(group)
            if sub is None or not sub.presence:
                raise exc.PermissionDenied(
                    f"subscribe to {group!r} to see its presence"
                )
            await self._ack(frame_id, await presence.state(group))
        else:
            raise exc.UnknownType(f"unknown protocol type {type_[:100]!r}")

    async def _rt_auth(self, frame_id: str | None, data: dict) -> None:
        authenticator = self._first_message_auth()
        if authenticator is None:
            raise exc.UnknownType("first-message authentication is not enabled")
        if self.user.is_authenticated:
            raise exc.BadEnvelope("already authenticated")
        try:
            user = await authenticator.authenticate_token(data.get("token"))
        except exc.NotAuthenticated as error:
            self.log.info(
                "connection %s: rt.auth failed (%s)", self.connection_id, error.detail
            )
            await self.close(error, status.WS_4401_NOT_AUTHENTICATED)
            return
        self.user = user
        denied = await self._check_connect()
        if denied is not None:
            await self.close(denied, status.WS_4403_FORBIDDEN)
            return
        self.pending_auth = False
        await self._connected()
        if not self.closed:  # on_connect may still refuse the connection
            await self._ack(frame_id, {"user": user_summary(user)})

    async def _rt_hello(self, frame_id: str | None, data: dict) -> None:
        events = data.get("events", {})
        if not isinstance(events, dict) or len(events) > 1000:
            raise exc.BadEnvelope("rt.hello data.events must be an object of versions")
        agreed = {}
        for type_, version in events.items():
            if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                raise exc.BadEnvelope(
                    f"version of {str(type_)[:100]!r} must be an int >= 1"
                )
            if type_ in registry:
                self.versions[type_] = version
                sent = registry.negotiate(type_, version)
                if sent is not None:
                    agreed[type_] = sent
        await self._ack(frame_id, {"protocol": PROTOCOL_VERSION, "events": agreed})

    async def _rt_subscribe(self, frame_id: str | None, data: dict) -> None:
        group = validate_group_name(data.get("group"))
        since, epoch = data.get("since"), data.get("epoch")
        if since is not None and (
            not isinstance(since, int) or isinstance(since, bool) or since < 0
        ):
            raise exc.BadEnvelope("since must be an int >= 0")
        if epoch is not None and (not isinstance(epoch, str) or len(epoch) > 64):
            raise exc.BadEnvelope("epoch must be a string")
        await self._check_subscribe(group)
        previous = self.subs.get(group)
        if previous is None and (
            len(self._client_subs()) >= realtime_settings.MAX_SUBSCRIPTIONS
        ):
            raise exc.PermissionDenied(
                f"at most {realtime_settings.MAX_SUBSCRIPTIONS} subscriptions per "
                "connection",
                code="forbidden",
            )
        # Subscribing again (a client filling a gap) keeps the hub membership and the
        # presence entry: only the delivery state starts over.
        self.subs[group] = sub = Subscription(group)
        if previous is None:
            await self.hub.join(group, self)
        else:
            sub.presence = previous.presence
        replay: list[tuple[int, str]] = []
        if history.keeps_history(group):
            if since is None:
                seq, current_epoch = await history.position(group)
                recovered = True
            else:
                read = await history.read_since(group, since, epoch)
                seq, current_epoch, recovered = read.seq, read.epoch, read.recovered
                replay = read.frames
        else:
            seq, current_epoch, recovered = None, None, since is None
        await self._ack(
            frame_id,
            {
                "group": group,
                "seq": seq,
                "epoch": current_epoch,
                "recovered": recovered,
            },
        )
        metrics.recovery(since, recovered)
        sub.last_seq = seq or 0
        if recovered and since is not None:
            sub.last_seq = since
            for frame_seq, text in replay:
                if frame_seq > sub.last_seq:
                    sub.last_seq = frame_seq
                    if self.versions:
                        text = _replayed(group, frame_seq, text, self.versions)
                    if text is not None:
                        await self._send_text(text)
        buffered, sub.buffer = sub.buffer or [], None
        for event in buffered:
            await self.deliver(event)
        if not sub.presence and presence.tracks_presence(group):
            sub.presence = True
            await presence.join(self, group)
        if previous is None:
            await self.on_subscribe(group)

    def _client_subs(self) -> list[str]:
        own = user_group(self.user) if self.user.is_authenticated else None
        return [group for group in self.subs if group != own]

    async def _check_subscribe(self, group: str) -> None:
        found = match_patterns(self.get_subscription_patterns(), group)
        if found is None:
            raise exc.PermissionDenied(f"group {group!r} may not be subscribed to")
        params, permission_classes = found
        for permission_class in permission_classes or ():
            permission = permission_class()
            if not await call_check(
                permission.has_subscribe_permission, self, group, **params
            ):
                raise exc.PermissionDenied(permission.message)

    async def _unsubscribe(self, group: str) -> None:
        if group == (user_group(self.user) if self.user.is_authenticated else None):
            raise exc.PermissionDenied("the personal group cannot be left")
        sub = self.subs.pop(group, None)
        if sub is None:
            return
        await self.hub.leave(group, self)
        if sub.presence:
            await presence.leave(self, group)
        await self.on_unsubscribe(group)


def _replayed(group: str, seq: int, text: str, versions: dict) -> str | None:
    """A stored frame as a client that declared ``versions`` should get it."""
    frame = orjson.loads(text)
    event = Event(
        {
            "group": group,
            "event": frame["type"],
            "v": frame.get("v"),
            "seq": seq,
            "text": text,
        }
    )
    return event.text_for(versions.get(frame["type"]))


_PING = '{"type":"rt.ping"}'
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


# Not the NotAuthenticated exception: that one closes with 4401, this only refuses.
_AUTH_FIRST = exc.RealtimeError("Send rt.auth first.", code="not_authenticated")


def _check_nesting(text: str, frame: Any) -> None:
    """Refuse frames nested deeper than MAX_NESTING.

    orjson accepts 1024 levels, but DRF fields, repr() and copies recurse in Python,
    whose stack a daphne server has only ~900 frames left of: deep data would end as
    a RecursionError (server_error and a huge logged traceback) instead of bad_json.
    """
    limit = realtime_settings.MAX_NESTING
    if text.count("{") + text.count("[") <= limit:
        return  # cannot be deeper than the number of openers (C-speed pre-check)
    containers = (dict, list)
    stack = [(frame, 1)] if type(frame) in containers else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            raise exc.BadJSON(f"frame is nested deeper than {limit} levels")
        items = value.values() if isinstance(value, dict) else value
        stack.extend((item, depth + 1) for item in items if type(item) in containers)


def _frame_id(frame: Any) -> str | None:
    if isinstance(frame, dict):
        frame_id = frame.get("id")
        if isinstance(frame_id, str) and 0 < len(frame_id) <= 128:
            return frame_id
    return None


def _envelope(frame: Any) -> tuple[str, int | None, dict]:
    if not isinstance(frame, dict):
        raise exc.BadEnvelope(
            f"frame must be a JSON object, got {type(frame).__name__}"
        )
    type_ = frame.get("type")
    if not isinstance(type_, str) or not 0 < len(type_) <= 100:
        raise exc.BadEnvelope(
            "type must be a non-empty string of at most 100 characters"
        )
    v = frame.get("v")
    if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
        raise exc.BadEnvelope("v must be an int >= 1")
    if "id" in frame and frame["id"] is not None and _frame_id(frame) is None:
        raise exc.BadEnvelope("id must be a string of 1-128 characters")
    data = frame.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise exc.BadEnvelope(f"data must be an object, got {type(data).__name__}")
    return type_, v, data


__all__ = ["Message", "RealtimeConsumer", "handler"]
