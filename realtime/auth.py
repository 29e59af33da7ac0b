"""Handshake authenticators and single-use tickets.

Authenticators run in REALTIME["AUTHENTICATORS"] order at the handshake. Each returns a
user when it found valid credentials, None when it found none, and raises
NotAuthenticated when it found credentials that are invalid, expired or revoked.
"""

from __future__ import annotations

import logging
import secrets
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing

from realtime.exceptions import NotAuthenticated
from realtime.settings import realtime_settings

if TYPE_CHECKING:
    from realtime.consumers import RealtimeConsumer

logger = logging.getLogger(__name__)
TICKET_SALT = "realtime.ticket"


def header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def query_param(scope: dict, name: str) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


class BaseAuthenticator:
    """Finds a user from the handshake."""

    async def authenticate(self, consumer: RealtimeConsumer) -> Any | None:
        """Return a user, None when no credentials were offered, or raise
        NotAuthenticated when the offered credentials are bad."""
        raise NotImplementedError


class SessionAuthenticator(BaseAuthenticator):
    """Django's session cookie, sent by the browser with the handshake."""

    async def authenticate(self, consumer: RealtimeConsumer) -> Any | None:
        raw = header(consumer.scope, b"cookie")
        if not raw:
            return None
        cookie = SimpleCookie()
        try:
            cookie.load(raw)
        except Exception:
            return None
        morsel = cookie.get(settings.SESSION_COOKIE_NAME)
        if morsel is None or not morsel.value:
            return None
        return await _session_user(morsel.value)


@database_sync_to_async
def _session_user(session_key: str) -> Any | None:
    from importlib import import_module

    from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, load_backend
    from django.utils.crypto import constant_time_compare

    engine = import_module(settings.SESSION_ENGINE)
    session = engine.SessionStore(session_key)
    try:
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session["_auth_user_backend"]
    except KeyError:
        return None  # an anonymous visitor's session: no credentials
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        raise NotAuthenticated("session is no longer valid")
    user = load_backend(backend_path).get_user(user_id)
    if user is None:
        raise NotAuthenticated("session user no longer exists or is inactive")
    if hasattr(user, "get_session_auth_hash"):
        session_hash = session.get(HASH_SESSION_KEY)
        if not (
            session_hash
            and constant_time_compare(session_hash, user.get_session_auth_hash())
        ):
            raise NotAuthenticated("session was invalidated (password changed)")
    return user


def issue_ticket(user: Any) -> str:
    """Return a signed ticket for ``user``, valid once within TICKET_TTL seconds."""
    return signing.dumps(
        {"u": str(user.pk), "n": secrets.token_urlsafe(12)},
        salt=TICKET_SALT,
        compress=True,
    )


async def redeem_ticket(ticket: str) -> Any:
    """Return the ticket's user, or raise NotAuthenticated (expired, forged, reused)."""
    from realtime.backends import get_backend

    ttl = realtime_settings.TICKET_TTL
    try:
        payload = signing.loads(ticket, salt=TICKET_SALT, max_age=ttl)
    except signing.SignatureExpired:
        raise NotAuthenticated("ticket expired") from None
    except signing.BadSignature:
        raise NotAuthenticated("ticket is not valid") from None
    if not await get_backend().claim(f"ticket:{payload['n']}", ttl + 1):
        raise NotAuthenticated("ticket was already used")
    user = await _active_user(payload["u"])
    if user is None:
        raise NotAuthenticated("ticket user no longer exists or is inactive")
    return user


@database_sync_to_async
def _active_user(pk: str) -> Any | None:
    user = get_user_model()._default_manager.filter(pk=pk).first()
    return user if user is not None and user.is_active else None


@database_sync_to_async
def revoked_users(pks: set) -> set:
    """The pks among ``pks`` whose user is now inactive or deleted."""
    active = set(
        get_user_model()
        ._default_manager.filter(pk__in=pks, is_active=True)
        .values_list("pk", flat=True)
    )
    return pks - active


@database_sync_to_async
def revoked_tokens(keys: set) -> set:
    """The DRF authtoken keys among ``keys`` that no longer exist (revoked)."""
    if not keys or "rest_framework.authtoken" not in settings.INSTALLED_APPS:
        return set()
    from rest_framework.authtoken.models import Token

    return keys - set(Token.objects.filter(key__in=keys).values_list("key", flat=True))


class TicketAuthenticator(BaseAuthenticator):
    """``?ticket=...`` from the ticket endpoint (``realtime:ticket``)."""

    async def authenticate(self, consumer: RealtimeConsumer) -> Any | None:
        ticket = query_param(consumer.scope, "ticket")
        if not ticket:
            return None
        return await redeem_ticket(ticket)


def header_authentication_classes() -> list[type]:
    classes = realtime_settings.HEADER_AUTHENTICATION_CLASSES
    if classes is not None:
        return list(classes)
    from rest_framework.authentication import SessionAuthentication, TokenAuthentication
    from rest_framework.settings import api_settings

    classes = [
        cls
        for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES
        if not issubclass(cls, SessionAuthentication)
    ]
    if "rest_framework.authtoken" in settings.INSTALLED_APPS and not any(
        issubclass(cls, TokenAuthentication) for cls in classes
    ):
        classes.append(TokenAuthentication)
    return classes


def _remember_token(consumer: RealtimeConsumer | None, auth: Any) -> None:
    # A DRF authtoken's key, so the hub can close the socket once the token is
    # deleted (revoked); other credentials carry nothing to re-check.
    if consumer is None or "rest_framework.authtoken" not in settings.INSTALLED_APPS:
        return
    from rest_framework.authtoken.models import Token

    if isinstance(auth, Token):
        consumer.token_key = auth.key


@database_sync_to_async
def _drf_authenticate(headers: dict[str, str]) -> tuple[Any, Any] | None:
    from django.http import HttpRequest
    from rest_framework import exceptions
    from rest_framework.request import Request

    request = HttpRequest()
    request.method = "GET"
    for name, value in headers.items():
        request.META["HTTP_" + name.upper().replace("-", "_")] = value
    drf_request = Request(request)
    for cls in header_authentication_classes():
        try:
            result = cls().authenticate(drf_request)
        except exceptions.AuthenticationFailed as exc:
            raise NotAuthenticated(str(exc.detail)) from None
        if result is not None:
            return result
    return None


class HeaderAuthenticator(BaseAuthenticator):
    """``Authorization`` header through DRF authentication classes (non-browser clients)."""

    async def authenticate(self, consumer: RealtimeConsumer) -> Any | None:
        value = header(consumer.scope, b"authorization")
        if not value:
            return None
        result = await _drf_authenticate({"Authorization": value})
        if result is None:
            return None
        _remember_token(consumer, result[1])
        return result[0]


class FirstMessageAuthenticator(BaseAuthenticator):
    """``{"type": "rt.auth", "data": {"token": ...}}`` within AUTH_TIMEOUT seconds.

    The token may be a ticket or anything a DRF authentication class accepts in an
    ``Authorization: <keyword> <token>`` header (``Token`` for DRF's authtoken).
    """

    async def authenticate(self, consumer: RealtimeConsumer) -> Any | None:
        return None  # nothing at the handshake; see authenticate_token

    async def authenticate_token(
        self, token: Any, consumer: RealtimeConsumer | None = None
    ) -> Any:
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise NotAuthenticated("rt.auth needs data.token, a non-empty string")
        if ":" in token:  # signed tickets carry a timestamp separated by ':'
            return await redeem_ticket(token)
        for cls in header_authentication_classes():
            keyword = getattr(cls, "keyword", "Bearer")
            result = await _drf_authenticate({"Authorization": f"{keyword} {token}"})
            if result is not None:
                _remember_token(consumer, result[1])
                return result[0]
        raise NotAuthenticated("token is not valid")


def user_summary(user: Any) -> dict[str, Any] | None:
    if user is None or not user.is_authenticated:
        return None
    return {"id": user.pk, "username": user.get_username()}
