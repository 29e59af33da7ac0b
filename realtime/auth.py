"""Handshake authenticators and single-use tickets.

Authenticators run in REALTIME["AUTHENTICATORS"] order at the handshake. Each returns
``(user, credential)`` when it found valid credentials (as DRF's ``authenticate()``
returns ``(user, auth)``), None when it found none, and raises NotAuthenticated when it
found credentials that are invalid, expired or revoked. The credential says what the
connection is re-checked against while it stays open (``revalidate``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.http.cookie import parse_cookie
from django.utils.crypto import salted_hmac

from realtime import status
from realtime.backends import get_backend
from realtime.connection import Connection
from realtime.exceptions import NotAuthenticated
from realtime.hub import Hub
from realtime.origins import header, origin_allowed
from realtime.settings import realtime_settings

logger = logging.getLogger(__name__)
TICKET_SALT = "realtime.ticket"


def query_param(scope: dict, name: str) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


@dataclass(frozen=True)
class Credential:
    """What a connection authenticated with, re-checked while it stays open: a
    Django session or a DRF authtoken (ended or deleted: the socket closes, 4401)."""

    session_key: str | None = None
    token_key: str | None = None


#: What an authenticator found: the user, and the credential to re-check (None when
#: there is nothing to re-check, as with a JWT).
Authenticated = tuple[Any, Credential | None]


class BaseAuthenticator:
    """Finds a user from the handshake."""

    async def authenticate(self, consumer: Connection) -> Authenticated | None:
        """Return ``(user, credential)``, None when no credentials were offered, or
        raise NotAuthenticated when the offered credentials are bad."""
        raise NotImplementedError


async def authenticate(
    authenticators: list, consumer: Connection
) -> Authenticated | None:
    """The first ``(user, credential)`` one of ``authenticators`` finds, or None."""
    for authenticator in authenticators:
        found = authenticated(await authenticator.authenticate(consumer), authenticator)
        if found is not None:
            return found
    return None


def authenticated(result: Any, authenticator: Any) -> Authenticated | None:
    """``result`` of ``authenticator`` as ``(user, credential)``.

    A bare user (what authenticators returned up to 0.1) still works, with a
    DeprecationWarning: such a connection has no credential to re-check.
    """
    if result is None or isinstance(result, tuple):
        return result
    warnings.warn(
        f"{type(authenticator).__qualname__}.authenticate() returned a bare user; "
        "return (user, credential) instead, credential None when there is nothing "
        "to re-check (bare users are refused from 1.0)",
        DeprecationWarning,
        stacklevel=3,
    )
    return result, None


class SessionAuthenticator(BaseAuthenticator):
    """Django's session cookie, sent by the browser with the handshake.

    Only with an ``Origin`` that the origin rule allows: browsers always send one, so
    a cookie without it is not a browser's, and a consumer routed without
    ``websocket_app`` still never rides a cookie sent by a foreign page.
    """

    async def authenticate(self, consumer: Connection) -> Authenticated | None:
        scope = consumer.scope
        raw = header(scope, b"cookie")
        if not raw:
            return None
        # Parsed as Django's HTTP side parses it: one odd cookie set by a sibling
        # site must not hide the session (http.cookies stops at the first).
        session_key = parse_cookie(raw).get(settings.SESSION_COOKIE_NAME)
        if not session_key:
            return None
        origin = header(scope, b"origin")
        if origin is None or not origin_allowed(origin, scope):
            logger.info("session cookie ignored: the handshake has no allowed Origin")
            return None
        user = await _session_user(session_key)
        if user is None:
            return None
        return user, Credential(session_key=session_key)


def _session_store() -> Any:
    from importlib import import_module

    return import_module(settings.SESSION_ENGINE).SessionStore


def _session_hash_ok(session: dict, user: Any) -> bool:
    """The session still belongs to ``user``'s current password, as Django checks
    it in ``get_user`` (fallback secrets included)."""
    from django.contrib.auth import HASH_SESSION_KEY
    from django.utils.crypto import constant_time_compare

    if not hasattr(user, "get_session_auth_hash"):
        return True
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash:
        return False
    fallbacks: Callable[[], Any] = getattr(
        user, "get_session_auth_fallback_hash", lambda: []
    )
    return any(
        constant_time_compare(session_hash, known)
        for known in (user.get_session_auth_hash(), *fallbacks())
    )


@database_sync_to_async
def _session_user(session_key: str) -> Any | None:
    from django.contrib.auth import SESSION_KEY, load_backend

    session = _session_store()(session_key)
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
    if not _session_hash_ok(session, user):
        raise NotAuthenticated("session was invalidated (password changed)")
    return user


def _session_data(keys: list[str]) -> dict[str, dict]:
    """Each live session's data; ended and expired sessions are left out."""
    from django.contrib.sessions.backends.db import SessionStore as DatabaseStore
    from django.utils import timezone

    store = _session_store()
    if not issubclass(store, DatabaseStore):  # cache, file, custom: one by one
        found = {}
        for key in keys:
            session = store(key)
            data = session.load()
            if session.session_key is not None:  # load() clears it when gone
                found[key] = data
        return found
    # Database sessions (cached_db writes through, so the table is the truth):
    # one query per 500 keys rather than one per session.
    model, decoder, found = store.get_model_class(), store(), {}
    for start in range(0, len(keys), 500):
        rows = model.objects.filter(
            session_key__in=keys[start : start + 500], expire_date__gt=timezone.now()
        ).values_list("session_key", "session_data")
        found.update((key, decoder.decode(data)) for key, data in rows)
    return found


@database_sync_to_async
def ended_sessions(sessions: dict[str, Any]) -> set[str]:
    """The session keys among ``sessions`` (key -> the pk it authenticated) that
    were logged out, expired, flushed, or invalidated by a password change."""
    from django.contrib.auth import SESSION_KEY

    if not sessions:
        return set()
    live = _session_data(list(sessions))
    users = get_user_model()._default_manager.in_bulk(set(sessions.values()))
    ended = set()
    for key, pk in sessions.items():
        data, user = live.get(key), users.get(pk)
        if (
            data is None
            or user is None
            or str(data.get(SESSION_KEY)) != str(pk)
            or not _session_hash_ok(data, user)
        ):
            ended.add(key)
    return ended


def issue_ticket(
    user: Any, *, session_key: str | None = None, token_key: str | None = None
) -> str:
    """Return a signed ticket for ``user``, valid once within TICKET_TTL seconds.

    ``session_key`` or ``token_key`` names the credential the ticket was minted with:
    the socket it opens is then re-checked against it like one opened with it.
    """
    # "t", when it was issued: a claim store that failed over refuses tickets
    # issued before its new master took over (BaseBackend.claim).
    payload = {"u": str(user.pk), "n": secrets.token_urlsafe(12), "t": int(time.time())}
    if session_key or token_key:
        # Encrypted, not only signed: a ticket may end up in a URL log, and the
        # credential inside it lives much longer than the ticket.
        kind, key = ("s", session_key) if session_key else ("t", token_key)
        payload["c"] = _cipher().encrypt(f"{kind}:{key}".encode()).decode()
    return signing.dumps(payload, salt=TICKET_SALT, compress=True)


def _cipher() -> Any:
    from cryptography.fernet import Fernet, MultiFernet

    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())]
    return MultiFernet([Fernet(_fernet_key(key)) for key in keys])


def _fernet_key(secret: str) -> bytes:
    digest = salted_hmac(
        "realtime.ticket.credential", "fernet", secret=secret, algorithm="sha256"
    ).digest()
    return base64.urlsafe_b64encode(digest)


async def redeem_ticket(ticket: str) -> Authenticated:
    """Return the ticket's user and the credential it was minted with, or raise
    NotAuthenticated (expired, forged, reused, or its credential revoked)."""
    ttl = realtime_settings.TICKET_TTL
    try:
        payload = signing.loads(ticket, salt=TICKET_SALT, max_age=ttl)
    except signing.SignatureExpired:
        raise NotAuthenticated("ticket expired") from None
    except signing.BadSignature:
        raise NotAuthenticated("ticket is not valid") from None
    claimed = await get_backend().claim(
        f"ticket:{payload['n']}", ttl + 1, issued=payload.get("t")
    )
    if not claimed:
        raise NotAuthenticated("ticket was already used")
    credential = payload.get("c")
    kind = key = None
    if credential is None:
        user = await _active_user(payload["u"])
    else:
        kind, key = _decrypt(credential).split(":", 1)
        user = await (_session_user(key) if kind == "s" else _token_user(key))
    if user is None or str(user.pk) != payload["u"]:
        raise NotAuthenticated("ticket user or credential is no longer valid")
    # The socket is re-checked against the minting credential, like one opened
    # with it.
    if kind == "s":
        return user, Credential(session_key=key)
    if kind == "t":
        return user, Credential(token_key=key)
    return user, None


def _decrypt(credential: str) -> str:
    from cryptography.fernet import InvalidToken

    try:
        return _cipher().decrypt(credential.encode()).decode()
    except InvalidToken:  # signed with a key this process no longer has
        raise NotAuthenticated("ticket is not valid") from None


@database_sync_to_async
def _active_user(pk: str) -> Any | None:
    user = get_user_model()._default_manager.filter(pk=pk).first()
    return user if user is not None and user.is_active else None


@database_sync_to_async
def _token_user(key: str) -> Any | None:
    if "rest_framework.authtoken" not in settings.INSTALLED_APPS:
        return None
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return None
    return token.user


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

    async def authenticate(self, consumer: Connection) -> Authenticated | None:
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


def _drf_credential(auth: Any) -> Credential | None:
    # A DRF authtoken's key, so the socket closes once the token is deleted
    # (revoked); other credentials carry nothing to re-check.
    if "rest_framework.authtoken" not in settings.INSTALLED_APPS:
        return None
    from rest_framework.authtoken.models import Token

    return Credential(token_key=auth.key) if isinstance(auth, Token) else None


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

    async def authenticate(self, consumer: Connection) -> Authenticated | None:
        value = header(consumer.scope, b"authorization")
        if not value:
            return None
        result = await _drf_authenticate({"Authorization": value})
        if result is None:
            return None
        return result[0], _drf_credential(result[1])


class FirstMessageAuthenticator(BaseAuthenticator):
    """``{"type": "rt.auth", "data": {"token": ...}}`` within AUTH_TIMEOUT seconds.

    The token may be a ticket or anything a DRF authentication class accepts in an
    ``Authorization: <keyword> <token>`` header (``Token`` for DRF's authtoken).
    """

    async def authenticate(self, consumer: Connection) -> Authenticated | None:
        return None  # nothing at the handshake; see authenticate_token

    async def authenticate_token(self, token: Any) -> Authenticated:
        """Return ``(user, credential)`` for the token of an ``rt.auth``, or raise
        NotAuthenticated."""
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise NotAuthenticated("rt.auth needs data.token, a non-empty string")
        if ":" in token:  # signed tickets carry a timestamp separated by ':'
            return await redeem_ticket(token)
        for cls in header_authentication_classes():
            keyword = getattr(cls, "keyword", "Bearer")
            result = await _drf_authenticate({"Authorization": f"{keyword} {token}"})
            if result is not None:
                return result[0], _drf_credential(result[1])
        raise NotAuthenticated("token is not valid")


def user_summary(user: Any) -> dict[str, Any] | None:
    if user is None or not user.is_authenticated:
        return None
    return {"id": user.pk, "username": user.get_username()}


async def revalidate(hub: Hub) -> None:
    """Close, with 4401, connections of users deactivated or deleted, whose DRF
    token was deleted, or whose Django session ended (logout, expiry, password
    change), since they connected: a few queries per process per
    REVALIDATE_INTERVAL, not one per socket."""
    while True:
        interval = realtime_settings.REVALIDATE_INTERVAL
        await asyncio.sleep(interval or 60)
        if not interval:
            continue
        signed_in = [c for c in hub.connections if c.user.is_authenticated]
        if not signed_in:
            continue
        tokens = {c.token_key for c in signed_in if c.token_key is not None}
        sessions = {
            c.session_key: c.user.pk for c in signed_in if c.session_key is not None
        }
        try:
            revoked = await revoked_users({c.user.pk for c in signed_in})
            gone = await revoked_tokens(tokens)
            ended = await ended_sessions(sessions)
        except Exception:
            logger.exception("re-checking users failed")
            continue
        for consumer in signed_in:
            if consumer not in hub.connections:
                continue  # left while the queries ran
            if (
                consumer.user.pk in revoked
                or consumer.token_key in gone
                or consumer.session_key in ended
            ):
                await consumer.close(
                    NotAuthenticated("your credentials were revoked"),
                    status.WS_4401_NOT_AUTHENTICATED,
                )
