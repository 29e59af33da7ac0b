"""RealtimeConsumer: the protocol v1 endpoint users subclass.

The consumer owns the connection's life (connect, auth, the dispatch of frames,
limits, close); the other protocol frames are answered in realtime.protocol and bound
here as methods. Users declare ``permission_classes``, ``subscriptions`` and
``@handler`` methods and override small hooks (``on_connect``, ``on_disconnect``).
A client's ``type`` is only ever looked up in the handler tables (``@handler``
declarations, ``protocol_handlers``): it is never turned into a method name.

A connection is composed of its ``outbox`` (ordered, backpressured writes and pings,
realtime.outbound), its ``subs`` (joined groups and the delivery of their events,
realtime.subscriptions) and one ``state`` (realtime.connection.ConnectionState).
"""

from __future__ import annotations

import inspect
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser

from realtime import envelope, ephemeral, logs, metrics, protocol, runtime, status
from realtime import exceptions as exc
from realtime.auth import (
    Credential,
    FirstMessageAuthenticator,
    authenticate,
    authenticated,
    user_summary,
)
from realtime.connection import ConnectionState
from realtime.encoding import dumps
from realtime.envelope import Message
from realtime.groups import compile_patterns, user_group
from realtime.layers import unreachable
from realtime.live import Event
from realtime.outbound import Outbox, background
from realtime.permissions import check_permissions, denied_by
from realtime.protocol import PROTOCOL_VERSION
from realtime.publishing import anotify, prepare
from realtime.schema import registry
from realtime.settings import realtime_settings
from realtime.subscriptions import Subscriptions
from realtime.throttling import TokenBucket

# Message is defined below the connection (ephemeral relays build it too) and is
# documented here: ``realtime.consumers.Message``.
__all__ = ["Message", "RealtimeConsumer", "handler"]

logger = logging.getLogger(__name__)


def handler(
    type: str, *, permission_classes: list | None = None
) -> Callable[[Callable], Callable]:
    """Mark a consumer method as the handler of client event ``type``."""

    def decorator(fn: Callable) -> Callable:
        fn._realtime_handler = (type, permission_classes)  # type: ignore[attr-defined]
        return fn

    return decorator


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
    #: Protocol frames (``rt.*``) and the methods answering them. Those not listed
    #: in ``open_to_unauthenticated`` wait for ``rt.auth`` on a connection that must
    #: authenticate first.
    protocol_handlers: dict[str, str] = {
        "rt.ping": "_rt_ping",
        "rt.pong": "_rt_pong",
        "rt.auth": "_rt_auth",
        "rt.hello": "_rt_hello",
        "rt.subscribe": "_rt_subscribe",
        "rt.unsubscribe": "_rt_unsubscribe",
        "rt.presence": "_rt_presence",
    }
    open_to_unauthenticated = frozenset({"rt.ping", "rt.pong", "rt.auth", "rt.hello"})

    #: Where the connection is in its life (see ConnectionState).
    state = ConnectionState.CONNECTING
    #: What this connection authenticated with, re-checked while it stays open.
    credential: Credential | None = None

    _handlers: dict[str, tuple[str, list | None]] = {}
    _compiled_subscriptions: list | None = None

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

    def get_subscription_patterns(self) -> list:
        compiled = type(self).__dict__.get("_compiled_subscriptions")
        if compiled is None:
            compiled = compile_patterns(self.subscriptions)
            type(self)._compiled_subscriptions = compiled
        return compiled

    # -- what services see of the connection (realtime.connection.Connection) -------

    @property
    def token_key(self) -> str | None:
        """The DRF authtoken this connection authenticated with (re-checked)."""
        return self.credential.token_key if self.credential else None

    @property
    def session_key(self) -> str | None:
        """The Django session this connection authenticated with (re-checked)."""
        return self.credential.session_key if self.credential else None

    @property
    def personal_group(self) -> str | None:
        """The user's own group, joined once authenticated (``notify_user``)."""
        return self.subs.personal

    @property
    def presence_groups(self) -> list[str]:
        """Groups where this connection is listed in presence (leases to renew)."""
        return self.subs.presence_groups

    def is_subscribed(self, group: str) -> bool:
        """Return True if this connection is subscribed to ``group``."""
        return group in self.subs

    def push(self, event: Event) -> None:
        """Write a group event to this socket without waiting (called by the hub)."""
        self.subs.push(event)

    def mark_reset(self, group: str, reason: str) -> None:
        """Events of ``group`` (no history) may be lost: say so before the next."""
        self.subs.mark_reset(group, reason)

    def flush_reset(self, group: str) -> None:
        """Send a due rt.reset now (no event came to carry it)."""
        self.subs.flush_reset(group)

    def check_position(self, group: str, epoch: str, seq: int) -> None:
        """The hub read ``group``'s position: repair if this socket is behind it."""
        self.subs.check_position(group, epoch, seq)

    async def ack(self, id: str | None, data: Any = None) -> None:
        """Answer client frame ``id`` with an ``rt.ack`` carrying ``data``."""
        await self.outbox.ack(id, data)

    # -- sending --------------------------------------------------------------------

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
            await self.outbox.send_text(dumps(frame).decode())

    # -- ASGI -----------------------------------------------------------------------

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        # No per-socket channel-layer channel: the process's hub delivers events.
        self.scope = scope
        self.base_send = send
        # 16 random hex digits, as uuid4().hex[:16] gave, for a quarter of the CPU.
        self.connection_id = secrets.token_hex(8)
        self.log = logs.ConnectionLog(logger, self)
        self.user = scope.get("user") or AnonymousUser()
        self.state = ConnectionState.CONNECTING
        self.versions: dict[str, int] = {}
        self.close_code: int | None = None
        self._faults = 0
        # Made at the first rate-limit strike: most connections never have one.
        self._rate_strikes: deque[float] | None = None
        self.bucket = TokenBucket(realtime_settings.RATE, realtime_settings.BURST)
        self.hub = await runtime.start()
        self.outbox = Outbox(
            send, close=self.close, connection_id=self.connection_id, log=self.log
        )
        self.subs = Subscriptions(self, self.outbox, self.hub, versions=self.versions)
        # The hub's call per event and socket lands on the subscriptions directly:
        # composing the connection costs the fan-out no extra call.
        self.push = self.subs.push  # type: ignore[method-assign]
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        try:
            await self._open()
            while self.state is not ConnectionState.CLOSED:
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
        if self.hub.shutting_down:
            # The server is stopping and a balancer may still send clients here for
            # a moment: tell them to go elsewhere now rather than cut them at exit.
            await self.close(exc.ShuttingDown(), status.WS_4503_SHUTTING_DOWN)
            return
        authenticators = self.get_authenticators()
        try:
            found = await authenticate(authenticators, self)
        except exc.NotAuthenticated as error:
            self.log.info(
                "connection %s: authentication failed (%s)",
                self.connection_id,
                error.detail,
            )
            await self.close(error, status.WS_4401_NOT_AUTHENTICATED)
            return
        if found is not None:
            self.user, self.credential = found
        state = ConnectionState.OPEN
        denied = await self._check_connect()
        if denied is not None:
            if not self.user.is_authenticated and self._first_message_auth(
                authenticators
            ):
                state = ConnectionState.AUTHENTICATING
                self.auth_deadline = now + realtime_settings.AUTH_TIMEOUT
            else:
                await self.close(denied, denied.close_code or status.WS_4403_FORBIDDEN)
                return
        await self._accept(state)
        await self.outbox.send_frame(
            {
                "type": "rt.welcome",
                "data": {
                    "protocol": PROTOCOL_VERSION,
                    "connection_id": self.connection_id,
                    "heartbeat": realtime_settings.HEARTBEAT_INTERVAL,
                    "user": user_summary(self.user),
                    "auth_required": state is ConnectionState.AUTHENTICATING,
                    "max_frame_bytes": realtime_settings.MAX_FRAME_BYTES,
                },
            }
        )
        if state is ConnectionState.OPEN:
            await self._connected()

    def _first_message_auth(
        self, authenticators: list | None = None
    ) -> FirstMessageAuthenticator | None:
        if authenticators is None:
            authenticators = self.get_authenticators()
        for authenticator in authenticators:
            if isinstance(authenticator, FirstMessageAuthenticator):
                return authenticator
        return None

    async def _check_connect(self) -> exc.RealtimeError | None:
        permission = await denied_by(self.get_permissions(), "has_permission", self)
        if permission is None:
            return None
        if not self.user.is_authenticated:
            return exc.NotAuthenticated(permission.message)
        return exc.PermissionDenied(
            permission.message, close_code=status.WS_4403_FORBIDDEN
        )

    async def _connected(self) -> None:
        if self.user.is_authenticated:
            await self.subs.join_personal(user_group(self.user))
        try:
            await self.on_connect()
        except exc.RealtimeError as error:
            await self.close(error, error.close_code or status.WS_4403_FORBIDDEN)

    async def _accept(self, state: ConnectionState) -> None:
        self.state = state
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
        state = self.state
        if state is ConnectionState.CLOSING or state is ConnectionState.CLOSED:
            return
        self.state = ConnectionState.CLOSING  # the rt.error must not close again
        self.outbox.closing()
        metrics.closing(error, code)
        if error is not None:
            if state is ConnectionState.CONNECTING:
                await self.base_send({"type": "websocket.accept"})
            await self.outbox.send_error(error, id)
        await self.outbox.finish(timeout=5)
        self.close_code = code
        self.outbox.close()
        try:
            await self.base_send({"type": "websocket.close", "code": code})
        except Exception:
            pass  # the socket is already gone
        await self._cleanup()

    async def _cleanup(self) -> None:
        if self.state is ConnectionState.CLOSED:
            return
        self.state = ConnectionState.CLOSED
        self.outbox.close()
        self.hub.connections.discard(self)
        metrics.connection_closed(self)
        personal = self.subs.personal
        for group in list(self.subs):
            try:
                await self.subs.release(group)
                if group != personal:
                    await self.on_unsubscribe(group)
            except Exception:
                self.log.exception(
                    "leaving %s for %s failed", group, self.connection_id
                )
        self.subs.clear()

    def tick(self, now: float) -> None:
        """Deadlines and heartbeat, called about once a second by the hub (plain
        function: thousands of idle sockets a second cost no coroutine each)."""
        state = self.state
        if state is ConnectionState.CLOSING or state is ConnectionState.CLOSED:
            return
        # Closes run in their own task: the hub ticks every connection in turn, and
        # one socket stuck on flow control must not hold up the others.
        if state is ConnectionState.AUTHENTICATING and now > self.auth_deadline:
            self.auth_deadline = float("inf")  # one close, not one per tick
            background(
                self.close(
                    exc.NotAuthenticated("no rt.auth within the auth timeout"),
                    status.WS_4401_NOT_AUTHENTICATED,
                )
            )
        elif now - self.last_recv > realtime_settings.HEARTBEAT_TIMEOUT:
            self.last_recv = now  # one close, not one per tick
            background(
                self.close(
                    exc.RealtimeError(
                        "No frame from the client within the heartbeat timeout.",
                        code="heartbeat_timeout",
                    ),
                    status.WS_4408_HEARTBEAT_TIMEOUT,
                )
            )
        elif now >= self.next_ping and state is not ConnectionState.CONNECTING:
            self.next_ping = now + realtime_settings.HEARTBEAT_INTERVAL
            self.outbox.ping()

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
            elif self.state is ConnectionState.AUTHENTICATING:
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
            await self.outbox.send_error(exc.Unavailable(), frame_id)
        except Exception:
            self.log.exception("handler error on connection %s", self.connection_id)
            await self.outbox.send_error(exc.ServerError(), frame_id)

    async def _client_error(
        self, error: exc.RealtimeError, frame_id: str | None
    ) -> None:
        if error.close_code is not None:
            await self.close(error, error.close_code)
            return
        await self.outbox.send_error(error, frame_id)
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
        if strikes is None:
            strikes = self._rate_strikes = deque()
        strikes.append(now)
        while strikes and strikes[0] < now - 60:
            strikes.popleft()
        if len(strikes) >= realtime_settings.RATE_LIMIT_CLOSE_AFTER:
            await self.close(
                exc.RateLimited("rate limit exceeded repeatedly"),
                status.WS_4429_RATE_LIMITED,
            )
        else:
            await self.outbox.send_error(exc.RateLimited())

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
        await check_permissions(
            permission_classes or (), "has_message_permission", self, message
        )
        method = getattr(self, method_name)
        if inspect.iscoroutinefunction(method):
            result = await method(message)
        else:
            result = await database_sync_to_async(method)(message)
        await self.outbox.ack(frame_id, result)

    # -- protocol frames ------------------------------------------------------------

    async def _protocol(self, type_: str, frame_id: str | None, data: dict) -> None:
        if (
            self.state is ConnectionState.AUTHENTICATING
            and type_ not in self.open_to_unauthenticated
        ):
            raise _AUTH_FIRST
        name = self.protocol_handlers.get(type_)
        if name is None:
            raise exc.UnknownType(f"unknown protocol type {type_[:100]!r}")
        await getattr(self, name)(frame_id, data)

    # The frames that leave the connection's identity as it is are answered in
    # realtime.protocol; bound here, they stay methods a subclass overrides.
    _rt_ping = protocol.rt_ping
    _rt_pong = protocol.rt_pong
    _rt_hello = protocol.rt_hello
    _rt_subscribe = protocol.rt_subscribe
    _rt_unsubscribe = protocol.rt_unsubscribe
    _rt_presence = protocol.rt_presence

    async def _rt_auth(self, frame_id: str | None, data: dict) -> None:
        authenticator = self._first_message_auth()
        if authenticator is None:
            raise exc.UnknownType("first-message authentication is not enabled")
        if self.user.is_authenticated:
            raise exc.BadEnvelope("already authenticated")
        try:
            found = authenticated(
                await authenticator.authenticate_token(data.get("token")),
                authenticator,
            )
            if found is None:
                raise exc.NotAuthenticated("token is not valid")
        except exc.NotAuthenticated as error:
            self.log.info(
                "connection %s: rt.auth failed (%s)", self.connection_id, error.detail
            )
            await self.close(error, status.WS_4401_NOT_AUTHENTICATED, id=frame_id)
            return
        self.user, self.credential = found
        denied = await self._check_connect()
        if denied is not None:
            await self.close(denied, status.WS_4403_FORBIDDEN, id=frame_id)
            return
        self.state = ConnectionState.OPEN
        await self._connected()
        if self.state is ConnectionState.OPEN:  # on_connect may refuse it still
            await self.outbox.ack(frame_id, {"user": user_summary(self.user)})


# Not the NotAuthenticated exception: that one closes with 4401, this only refuses.
_AUTH_FIRST = exc.RealtimeError("Send rt.auth first.", code="not_authenticated")


__all__ = ["Message", "RealtimeConsumer", "handler"]
