"""The ticket endpoint: a short-lived single-use credential for the handshake."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from realtime.auth import issue_ticket
from realtime.backends import get_backend
from realtime.publishing import run_sync
from realtime.settings import realtime_settings


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


async def _probe() -> dict[str, str]:
    from channels.layers import get_channel_layer

    checks = {}
    await get_backend().position("rt-health")  # one read: the backend answers
    checks["backend"] = "ok"
    layer = get_channel_layer(realtime_settings.CHANNEL_LAYER)
    if layer is not None:
        # A send to a throwaway channel exercises the layer's Redis connection.
        await layer.send(await layer.new_channel(), {"type": "rt.health"})
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
