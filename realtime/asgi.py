"""``websocket_app(routes)``: origin validation and routing around the user's routes.

Authentication runs in ``RealtimeConsumer`` (per-consumer authenticators), after the
origin check here: a handshake from a foreign ``Origin`` or to an unknown path is
refused with HTTP 403 before anything else runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from channels.routing import URLRouter
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from realtime.auth import header
from realtime.settings import realtime_settings

logger = logging.getLogger(__name__)
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize_origin(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, or None when it is not an http(s) origin."""
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def origin_allowed(origin: str, scope: dict) -> bool:
    """Return True if a browser page at ``origin`` may open this WebSocket."""
    allowed = realtime_settings.ALLOWED_ORIGINS
    if allowed == "*" or (isinstance(allowed, (list, tuple)) and "*" in allowed):
        return True
    found = normalize_origin(origin)
    if found is None:
        return False
    scheme, host, port = found
    if allowed is not None:
        for entry in allowed:
            if entry.startswith(("http://*.", "https://*.")):
                wanted = normalize_origin(entry.replace("*.", "", 1))
                if (
                    wanted
                    and (scheme, port) == (wanted[0], wanted[2])
                    and (host.endswith("." + wanted[1]))
                ):
                    return True
            elif normalize_origin(entry) == found:
                return True
        return False
    # Default: same origin as the Host the browser connected to, and that host must be
    # one Django serves. Scheme is not compared: TLS may end at a proxy.
    host_header = header(scope, b"host")
    if not host_header:
        return False
    domain, host_port = split_domain_port(host_header.lower())
    if domain != host or not validate_host(
        domain,
        settings.ALLOWED_HOSTS
        or ([".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else []),
    ):
        return False
    if host_port:
        return int(host_port) == port
    return port in (80, 443)


async def deny(receive: Callable, send: Callable) -> None:
    """Refuse a handshake: daphne and uvicorn answer HTTP 403."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1000})


class OriginValidator:
    """Refuse WebSocket handshakes whose ``Origin`` is not allowed (HTTP 403).

    A handshake without ``Origin`` comes from a non-browser client (browsers always
    send one) and is let through to authentication like any other.
    """

    def __init__(self, app: Callable) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> Any:
        if scope["type"] == "websocket":
            origin = header(scope, b"origin")
            if origin is not None and not origin_allowed(origin, scope):
                from realtime.settings import describe_allowed_origins

                # WARNING: a refused page retries, and this line is all it leaves.
                logger.warning(
                    "refused WebSocket handshake from origin %r: allowed are %s "
                    "(set REALTIME['ALLOWED_ORIGINS'], docs/auth.md)",
                    origin[:200],
                    describe_allowed_origins(header(scope, b"host")),
                )
                return await deny(receive, send)
        return await self.app(scope, receive, send)


class KnownRoutes:
    """URLRouter that refuses an unknown path with 403 instead of an exception."""

    def __init__(self, routes: Sequence[Any]) -> None:
        self.router = URLRouter(list(routes))

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> Any:
        try:
            return await self.router(scope, receive, send)
        except ValueError as error:
            if not str(error).startswith("No route found"):
                raise
            return await deny(receive, send)


def websocket_app(routes: Sequence[Any]) -> Callable:
    """The ``"websocket"`` entry of a ProtocolTypeRouter for ``routes``."""
    return OriginValidator(KnownRoutes(routes))
