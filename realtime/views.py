"""The ticket endpoint: a short-lived single-use credential for the handshake."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from channels.layers import get_channel_layer
from django.http import HttpRequest, JsonResponse
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from realtime.auth import issue_ticket
from realtime.backends import get_backend
from realtime.backends.connections import connect, layer_hosts_setting
from realtime.bridge import run_sync
from realtime.settings import channel_layer_config, realtime_settings


class TicketView(APIView):
    """``POST`` with any DRF authentication: ``{"ticket": str, "expires_in": int}``."""

    permission_classes = [IsAuthenticated]

    def post(self, request: Request) -> Response:
        return Response(
            {
                "ticket": issue_ticket(request.user, **_credential(request)),
                "expires_in": int(realtime_settings.TICKET_TTL),
            }
        )


def _credential(request: Request) -> dict[str, str]:
    """The session or DRF token this request authenticated with, if any: the
    ticket's socket is re-checked against it (other credentials carry nothing to
    re-check)."""
    from django.conf import settings
    from rest_framework.authentication import SessionAuthentication

    if isinstance(request.successful_authenticator, SessionAuthentication):
        session_key = request._request.session.session_key
        return {"session_key": session_key} if session_key else {}
    if "rest_framework.authtoken" in settings.INSTALLED_APPS:
        from rest_framework.authtoken.models import Token

        if isinstance(request.auth, Token):
            return {"token_key": request.auth.key}
    return {}


#: The group whose position the readiness probe reads (it writes nothing).
HEALTH_GROUP = "rt-health"

# The probe's Redis clients, one per layer host, kept for the life of the process
# (per event loop, which for the probe is run_sync's long-lived one): a probe opens
# no channel, subscription or connection that outlives it.
_probe_clients: weakref.WeakKeyDictionary[Any, tuple[list, list]] = (
    weakref.WeakKeyDictionary()
)


async def _layer_clients() -> list[Any]:
    loop = asyncio.get_running_loop()
    hosts = layer_hosts_setting()
    cached = _probe_clients.get(loop)
    if cached is not None and cached[0] == hosts:
        return cached[1]
    if cached is not None:
        for client in cached[1]:
            await client.aclose()
    clients = [connect(host) for host in hosts]
    _probe_clients[loop] = (hosts, clients)
    return clients


async def _probe() -> dict[str, str]:
    checks = {}
    await get_backend().positions([HEALTH_GROUP])  # one read: the backend answers
    checks["backend"] = "ok"
    layer = get_channel_layer(realtime_settings.CHANNEL_LAYER)
    if layer is not None:
        if "channels_redis" in channel_layer_config().get("BACKEND", ""):
            # Each of the layer's Redis servers answers, with the layer's own
            # credentials and TLS options.
            for client in await _layer_clients():
                await client.ping()
        checks["channel_layer"] = "ok"
    return checks


def health(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when the backend and channel layer answer, else 503."""
    try:
        checks = run_sync(_probe(), timeout=2.0)
    except Exception as error:
        return JsonResponse(
            {"status": "unavailable", "error": type(error).__name__}, status=503
        )
    return JsonResponse({"status": "ok", **checks})
