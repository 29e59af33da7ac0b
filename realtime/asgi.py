"""``websocket_app(routes)``: origin validation and routing around the user's routes.

Authentication runs in ``RealtimeConsumer`` (per-consumer authenticators), after the
origin check here: a handshake from a foreign ``Origin`` or to an unknown path is
refused with HTTP 403 before anything else runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from channels.routing import URLRouter
from django.core.checks import Warning

from realtime.backends.connections import ALTERNATIVE, configured_servers, diagnose
from realtime.deflate_negotiation import negotiate
from realtime.origins import header, normalize_origin, origin_allowed
from realtime.settings import describe_allowed_origins, realtime_settings

logger = logging.getLogger(__name__)
# The server's own message limit is looked at once per process, on the first socket.
_server_checked = False
# Redis Cluster is refused (docs/decisions.md). The configured Redis servers are asked
# once per process, on the first socket (not at import: Redis may not be up yet);
# None until then, else the refusal ("" when there is none).
_cluster_refusal: str | None = None


async def deny(receive: Callable, send: Callable) -> None:
    """Refuse a handshake: daphne and uvicorn answer HTTP 403."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1000})


def server_limit_warning(send: Callable) -> Warning | None:
    """realtime.W006 when the server behind ``send`` accepts WebSocket messages
    larger than MAX_FRAME_BYTES; None when it does not, or cannot be told.

    uvicorn inflates a permessage-deflate message up to its ``--ws-max-size``
    (16 MiB by default) before the application sees it, so a few kilobytes on the
    wire can cost megabytes of memory. daphne does not negotiate compression.
    """
    config = getattr(getattr(send, "__self__", None), "config", None)
    limit = getattr(config, "ws_max_size", None)
    if type(config).__module__ != "uvicorn.config" or not isinstance(limit, int):
        return None
    wanted = realtime_settings.MAX_FRAME_BYTES
    if limit <= wanted:
        return None
    return Warning(
        f"uvicorn accepts WebSocket messages of up to {limit} bytes "
        f"(--ws-max-size), more than REALTIME['MAX_FRAME_BYTES'] ({wanted}): a "
        "compressed frame is inflated to that size in memory before realtime "
        "refuses it.",
        hint=f"Run uvicorn with --ws-max-size {wanted}.",
        id="realtime.W006",
    )


def check_server_limit(send: Callable) -> None:
    """Log realtime.W006 (see server_limit_warning) once per process."""
    global _server_checked
    _server_checked = True
    try:
        warning = server_limit_warning(send)
    except Exception:  # a server this was not written against: nothing to say
        return
    if warning is not None:
        logger.warning("%s", warning)


async def cluster_refusal() -> str:
    """Why this process refuses to serve ("" if it does not): a configured Redis is
    a Redis Cluster node. Asked once per process; logged at ERROR when found."""
    global _cluster_refusal
    if _cluster_refusal is not None:
        return _cluster_refusal
    _cluster_refusal = ""  # sockets arriving meanwhile are not held up
    servers = configured_servers()
    faults = await asyncio.gather(
        *(diagnose(host, timeout=1.0) for _, host in servers), return_exceptions=True
    )
    clusters = [
        setting
        for (setting, _), fault in zip(servers, faults, strict=True)
        if isinstance(fault, tuple) and fault[0] == "cluster"
    ]
    if clusters:
        _cluster_refusal = (
            f"{', '.join(clusters)}: a Redis Cluster node (cluster_enabled:1); "
            f"realtime does not support Redis Cluster. {ALTERNATIVE}"
        )
        logger.error("refusing WebSocket connections: %s", _cluster_refusal)
    return _cluster_refusal


async def admitted(scope: dict, receive: Callable, send: Callable) -> bool:
    """Whether a WebSocket handshake may go on to routing; when it may not, it has
    been refused (HTTP 403).

    A handshake without ``Origin`` comes from a non-browser client (browsers always
    send one) and is let through to authentication like any other.
    """
    if not _server_checked:
        check_server_limit(send)
    if realtime_settings.COMPRESSION:
        negotiate(send)
    if await cluster_refusal():
        await deny(receive, send)
        return False
    origin = header(scope, b"origin")
    if origin is not None and not origin_allowed(origin, scope):
        # WARNING: a refused page retries, and this line is all it leaves.
        logger.warning(
            "refused WebSocket handshake from origin %r: allowed are %s "
            "(set REALTIME['ALLOWED_ORIGINS'], docs/auth.md)",
            origin[:200],
            describe_allowed_origins(header(scope, b"host")),
        )
        await deny(receive, send)
        return False
    return True


class OriginValidator:
    """Refuse WebSocket handshakes whose ``Origin`` is not allowed (HTTP 403), in
    front of any ASGI app (``websocket_app`` does the same in front of its routes)."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> Any:
        if scope["type"] == "websocket" and not await admitted(scope, receive, send):
            return None
        return await self.app(scope, receive, send)


class WebSocketApp:
    """The origin check, then a URLRouter that refuses an unknown path with 403
    instead of an exception.

    One coroutine for both: its frame lives as long as the socket, so a second
    wrapper would be a second frame per idle connection.
    """

    def __init__(self, routes: Sequence[Any]) -> None:
        self.router = URLRouter(list(routes))

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> Any:
        if scope["type"] == "websocket" and not await admitted(scope, receive, send):
            return None
        try:
            return await self.router(scope, receive, send)
        except ValueError as error:
            if not str(error).startswith("No route found"):
                raise
            return await deny(receive, send)


def websocket_app(routes: Sequence[Any]) -> Callable:
    """The ``"websocket"`` entry of a ProtocolTypeRouter for ``routes``."""
    return WebSocketApp(routes)


__all__ = [
    "OriginValidator",
    "WebSocketApp",
    "normalize_origin",
    "origin_allowed",
    "server_limit_warning",
    "websocket_app",
]
