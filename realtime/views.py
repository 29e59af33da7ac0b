"""The ticket endpoint: a short-lived single-use credential for the handshake."""

from __future__ import annotations

from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from realtime.auth import issue_ticket
from realtime.settings import realtime_settings


class TicketView(APIView):
    """``POST`` with any DRF authentication: ``{"ticket": str, "expires_in": int}``."""

    permission_classes = [IsAuthenticated]

    def post(self, request: Request) -> Response:
        return Response(
            {
                "ticket": issue_ticket(request.user),
                "expires_in": int(realtime_settings.TICKET_TTL),
            }
        )
