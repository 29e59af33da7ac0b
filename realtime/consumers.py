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
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser

from realtime import envelope, ephemeral, logs, metrics, presence, runtime, status
from realtime import exceptions as exc
from realtime.auth import FirstMessageAuthenticator, user_summary
from realtime.encoding import dumps
from realtime.envelope import Message
from realtime.groups import user_group, validate_group_name
from realtime.layers import unreachable
from realtime.outbound import OutboundMixin, _background
from realtime.permissions import call_check
from realtime.publishing import anotify, prepare
from realtime.schema import registry
from realtime.settings import realtime_settings
from realtime.subscriptions import Subscription, SubscriptionsMixin
from realtime.throttling import TokenBucket

# Message is defined below the connection (ephemeral relays build it too) and is
# documented here: ``realtime.consumers.Message``.
__all__ = ["Message", "RealtimeConsumer", "handler"]

logger = logging.getLogger(__name__)
PROTOCOL_VERSION = 1


def handler(
    type: str, *, permission_classes: list | None = None
) -> Callable[[Callable], Callable]:
    """Mark a consumer method as the handler of client event ``type``."""

    def decorator(fn: Callable) -> Callable:
        fn._realtime_handler = (type, permission_classes)  # type: ignore[attr-defined]
        return fn

    return decorator


class RealtimeConsumer(SubscriptionsMixin, OutboundMixin, AsyncConsumer):
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
    #: The DRF authtoken this connection authenticated with (re-checked by the hub).
    token_key: str | None = None
    #: The Django session this connection authenticated with (re-checked by the hub).
    session_key: str | None = None
    #: The user's own group, joined once authenticated (``notify_user`` reaches it).
    personal_group: str | None = None

    _handlers: dict[str, tuple[str, list | None]] = {}

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

    async def on_subscribe(self, group: str) -> None:
        """Called after the connection joined ``group`` (ack and replay sent)."""

    async def on_unsubscribe(self, group: str) -> None:
        """Called after the connection left ``group`` (also when it closes)."""

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

    async def notify(self, group: str, type: str, data: Any = None, **kw: Any) -> Any:
        """Send an event to a group (``realtime.anotify``)."""
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
        self._pings: deque[tuple[str, int]] = deque(maxlen=32)
        self._faults = 0
        self._rate_strikes: deque[float] = deque()
        self.bucket = TokenBucket(realtime_settings.RATE, realtime_settings.BURST)
        self.hub = await runtime.start()
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
            group = self.personal_group = user_group(self.user)
            self.subs[group] = sub = Subscription(group)
            await self.hub.join(group, self)  # held in sub.buffer meanwhile
            await self._position(sub)
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
        *,
        id: str | None = None,
    ) -> None:
        """Send ``error`` (if any) as rt.error, answering frame ``id``, close with
        ``code`` and clean up."""
        if self.closed or self._closing:
            return
        self._closing = True  # the rt.error below must not trigger another close
        metrics.closing(error, code)
        if error is not None:
            await self._accept()
            await self._send_error(error, id)
        if self._writer is not None:
            # Frames queued behind a flow-controlled send (uvicorn) leave first, so
            # the close never overtakes them; bounded, the socket may be stuck.
            await asyncio.wait([self._writer], timeout=5)
        self.closed = True
        self.close_code = code
        self._flush_held()
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
        for group, sub in list(self.subs.items()):
            try:
                await self.hub.leave(group, self)
                if sub.presence:
                    await presence.leave(self, group)
                if group != self.personal_group:
                    await self.on_unsubscribe(group)
            except Exception:
                self.log.exception(
                    "leaving %s for %s failed", group, self.connection_id
                )
        self.subs.clear()

    # -- sending --------------------------------------------------------------------

    async def tick(self, now: float) -> None:
        """Deadlines and heartbeat, called about once a second by the hub."""
        if self.closed:
            return
        # Closes run in their own task: the hub ticks every connection in turn, and
        # one socket stuck on flow control must not hold up the others.
        if self.pending_auth and now > self.auth_deadline:
            self.auth_deadline = float("inf")  # one close, not one per tick
            _background(
                self.close(
                    exc.NotAuthenticated("no rt.auth within the auth timeout"),
                    status.WS_4401_NOT_AUTHENTICATED,
                )
            )
        elif now - self.last_recv > realtime_settings.HEARTBEAT_TIMEOUT:
            self.last_recv = now  # one close, not one per tick
            _background(
                self.close(
                    exc.RealtimeError(
                        "No frame from the client within the heartbeat timeout.",
                        code="heartbeat_timeout",
                    ),
                    status.WS_4408_HEARTBEAT_TIMEOUT,
                )
            )
        elif now >= self.next_ping and self.accepted:
            self.next_ping = now + realtime_settings.HEARTBEAT_INTERVAL
            await self._ping()

    # -- receiving ------------------------------------------------------------------

    async def _on_frame(self, message: dict) -> None:
        self.last_recv = time.monotonic()
        text = message.get("text")
        frame_id = None
        type_ = "frame"
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
            envelope.check_nesting(text, frame)
            frame_id = envelope.frame_id(frame)
            type_, v, data = envelope.parse(frame)
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
        except unreachable() as error:
            # Redis or the layer down or restarting: a transient failure the client
            # retries, not a bug in a handler.
            self.log.warning(
                "connection %s: %s unavailable: %r", self.connection_id, type_, error
            )
            await self._send_error(exc.Unavailable(), frame_id)
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
        if error.code in exc.CLIENT_FAULTS:
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
            self._pong(data)
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
            presence.check_churn(self, group)
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
            user = await authenticator.authenticate_token(data.get("token"), self)
        except exc.NotAuthenticated as error:
            self.log.info(
                "connection %s: rt.auth failed (%s)", self.connection_id, error.detail
            )
            await self.close(error, status.WS_4401_NOT_AUTHENTICATED, id=frame_id)
            return
        self.user = user
        denied = await self._check_connect()
        if denied is not None:
            await self.close(denied, status.WS_4403_FORBIDDEN, id=frame_id)
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


# Not the NotAuthenticated exception: that one closes with 4401, this only refuses.
_AUTH_FIRST = exc.RealtimeError("Send rt.auth first.", code="not_authenticated")


__all__ = ["Message", "RealtimeConsumer", "handler"]
