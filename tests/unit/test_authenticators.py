"""Authenticators return ``(user, credential)``, as DRF's ``authenticate()`` returns
``(user, auth)``; a bare user still works, with a DeprecationWarning."""

from __future__ import annotations

import warnings

import pytest
from django.conf import settings
from django.test import AsyncClient
from rest_framework.authtoken.models import Token

from realtime.auth import (
    BaseAuthenticator,
    Credential,
    FirstMessageAuthenticator,
    HeaderAuthenticator,
    SessionAuthenticator,
    TicketAuthenticator,
    authenticate,
    issue_ticket,
)
from realtime.consumers import RealtimeConsumer
from realtime.exceptions import NotAuthenticated
from realtime.hub import get_hub
from realtime.testing import RealtimeCommunicator

pytestmark = pytest.mark.django_db(transaction=True)

ALLOWED = b"http://allowed.example"  # tests.settings ALLOWED_ORIGINS


class Handshake:
    """What an authenticator reads of a connection: the handshake's scope."""

    def __init__(self, *headers: tuple[bytes, bytes], query: bytes = b"") -> None:
        self.scope = {
            "type": "websocket",
            "headers": list(headers),
            "query_string": query,
        }


@pytest.fixture
async def alice(django_user_model):
    return await django_user_model.objects.acreate(username="alice")


async def session_of(user) -> str:
    client = AsyncClient()
    await client.aforce_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def cookie(key: str) -> tuple[bytes, bytes]:
    return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode())


async def test_session_gives_the_user_and_the_session_to_recheck(alice):
    key = await session_of(alice)
    found = await SessionAuthenticator().authenticate(
        Handshake(cookie(key), (b"origin", ALLOWED))
    )
    assert found == (alice, Credential(session_key=key))


async def test_session_without_an_allowed_origin_is_no_credential(alice):
    key = await session_of(alice)
    authenticator = SessionAuthenticator()
    assert await authenticator.authenticate(Handshake(cookie(key))) is None
    evil = Handshake(cookie(key), (b"origin", b"http://evil.example"))
    assert await authenticator.authenticate(evil) is None


async def test_ticket_carries_the_credential_it_was_minted_with(alice):
    key = await session_of(alice)
    token = await Token.objects.acreate(user=alice)
    authenticator = TicketAuthenticator()
    for ticket, credential in (
        (issue_ticket(alice), None),
        (issue_ticket(alice, session_key=key), Credential(session_key=key)),
        (issue_ticket(alice, token_key=token.key), Credential(token_key=token.key)),
    ):
        query = f"ticket={ticket}".encode()
        found = await authenticator.authenticate(Handshake(query=query))
        assert found == (alice, credential)


async def test_a_used_ticket_is_refused(alice):
    query = f"ticket={issue_ticket(alice)}".encode()
    await TicketAuthenticator().authenticate(Handshake(query=query))
    with pytest.raises(NotAuthenticated, match="already used"):
        await TicketAuthenticator().authenticate(Handshake(query=query))


async def test_header_token_gives_the_token_to_recheck(alice):
    token = await Token.objects.acreate(user=alice)
    header = (b"authorization", f"Token {token.key}".encode())
    found = await HeaderAuthenticator().authenticate(Handshake(header))
    assert found == (alice, Credential(token_key=token.key))
    with pytest.raises(NotAuthenticated):
        await HeaderAuthenticator().authenticate(
            Handshake((b"authorization", b"Token wrong"))
        )


async def test_first_message_token_and_ticket(alice):
    token = await Token.objects.acreate(user=alice)
    authenticator = FirstMessageAuthenticator()
    assert await authenticator.authenticate(Handshake()) is None  # not at handshake
    assert await authenticator.authenticate_token(token.key) == (
        alice,
        Credential(token_key=token.key),
    )
    assert await authenticator.authenticate_token(issue_ticket(alice)) == (alice, None)
    with pytest.raises(NotAuthenticated, match="Invalid token"):
        await authenticator.authenticate_token("nope")


async def test_no_credentials_is_none_for_every_built_in():
    for authenticator in (
        SessionAuthenticator(),
        TicketAuthenticator(),
        HeaderAuthenticator(),
        FirstMessageAuthenticator(),
    ):
        assert await authenticator.authenticate(Handshake()) is None
    assert await authenticate([TicketAuthenticator()], Handshake()) is None


class Fixed(BaseAuthenticator):
    """A custom authenticator as docs/auth.md describes it."""

    def __init__(self, result) -> None:
        self.result = result

    async def authenticate(self, consumer):
        return self.result


async def test_the_first_authenticator_that_finds_credentials_wins(alice):
    found = await authenticate(
        [Fixed(None), Fixed((alice, Credential(token_key="k"))), Fixed(("x", None))],
        Handshake(),
    )
    assert found == (alice, Credential(token_key="k"))


async def test_a_bare_user_still_works_with_a_deprecation_warning(alice):
    with pytest.warns(DeprecationWarning, match=r"return \(user, credential\)"):
        found = await authenticate([Fixed(alice)], Handshake())
    assert found == (alice, None)


async def test_the_consumer_keeps_the_credential_to_recheck(alice):
    class Custom(RealtimeConsumer):
        authenticators = [Fixed((alice, Credential(token_key="abc")))]

    comm = RealtimeCommunicator(Custom.as_asgi(), "/ws/")
    assert (await comm.connect())[0]
    assert comm.welcome["data"]["user"]["username"] == "alice"
    (consumer,) = [c for c in await _connections() if isinstance(c, Custom)]
    assert consumer.credential == Credential(token_key="abc")
    assert (consumer.token_key, consumer.session_key) == ("abc", None)
    await comm.disconnect()


async def test_a_consumer_with_a_bare_user_authenticator_connects(alice):
    class Legacy(RealtimeConsumer):
        authenticators = [Fixed(alice)]

    comm = RealtimeCommunicator(Legacy.as_asgi(), "/ws/")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert (await comm.connect())[0]
    assert comm.welcome["data"]["user"]["username"] == "alice"
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    (consumer,) = [c for c in await _connections() if isinstance(c, Legacy)]
    assert consumer.credential is None and consumer.token_key is None
    await comm.disconnect()


async def _connections():
    return list((await get_hub()).connections)
