"""Which browser origins may open a WebSocket: the rule behind ``OriginValidator``.

Also used by ``SessionAuthenticator``: a session cookie is only ever accepted with an
``Origin`` this rule allows, however the consumer is routed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from realtime.settings import realtime_settings

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def header(scope: dict, name: bytes) -> str | None:
    """The first value of header ``name`` (lowercase bytes) in an ASGI scope."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def normalize_origin(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, or None when it is not an http(s) origin.

    An IPv6 host keeps its brackets (``[::1]``), as in ``Host`` and ALLOWED_HOSTS.
    """
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    return parts.scheme, host, port or DEFAULT_PORTS[parts.scheme]


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
