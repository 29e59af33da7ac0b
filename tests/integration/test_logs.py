"""Logging: connection context on every line about a connection, no secrets at INFO."""

from __future__ import annotations

import json
import logging

import pytest
from rest_framework.authtoken.models import Token

from realtime.auth import issue_ticket
from realtime.logs import ContextFilter, JSONFormatter
from realtime.testing import RealtimeCommunicator
from tests.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


async def connect(path="/ws/", **kw):
    comm = RealtimeCommunicator(application, path, **kw)
    connected, _ = await comm.connect()
    assert connected
    return comm


async def closed(comm):
    frames = list(comm.events)  # read by connect() in place of rt.welcome
    comm.events.clear()
    while True:
        output = await comm.receive_output(3)
        if output["type"] == "websocket.close":
            return frames, output["code"]
        frames.append(json.loads(output["text"]))


@pytest.fixture
def alice(django_user_model):
    user = django_user_model.objects.create_user("alice", password="pw")
    return user, Token.objects.create(user=user).key


async def test_no_token_or_ticket_reaches_info_logs(alice, caplog):
    user, token = alice
    caplog.set_level(logging.INFO)
    secrets = [token, "forged-secret-token-1234567890"]

    comm = await connect(headers=[(b"authorization", f"Token {secrets[1]}".encode())])
    assert (await closed(comm))[1] == 4401

    ticket = await _ticket(user)
    secrets.append(ticket)
    comm = await connect(f"/ws/auth/?ticket={ticket}")
    assert comm.welcome["data"]["user"]["username"] == "alice"
    await comm.disconnect()
    comm = await connect(f"/ws/auth/?ticket={ticket}")  # replayed
    frames, code = await closed(comm)
    assert code == 4401 and "already used" in frames[0]["data"]["message"]

    comm = await connect("/ws/auth/")
    await comm.send_frame({"type": "rt.auth", "data": {"token": secrets[1]}})
    assert (await closed(comm))[1] == 4401
    comm = await connect("/ws/auth/")
    reply = await comm.request("rt.auth", {"token": token})
    assert reply["type"] == "rt.ack"
    await comm.disconnect()

    formatter = JSONFormatter()
    logged = [formatter.format(record) for record in caplog.records]
    failures = [line for line in logged if "failed (" in line]
    assert len(failures) == 3  # the lines exist, and carry no secret
    for line in logged:
        for secret in secrets:
            assert secret not in line


async def test_lines_about_a_connection_carry_its_id_and_user(alice, caplog):
    user, token = alice
    caplog.set_level(logging.INFO)
    comm = await connect(headers=[(b"authorization", f"Token {token}".encode())])
    reply = await comm.request("test.boom")
    assert reply["data"]["code"] == "server_error"
    await comm.disconnect()
    anonymous = await connect(headers=[(b"authorization", b"Token wrong")])
    await closed(anonymous)

    about = [r for r in caplog.records if r.name == "realtime.consumers"]
    assert len(about) == 2
    boom, failed = about
    assert boom.connection_id == comm.welcome["data"]["connection_id"]
    assert boom.user_id == str(user.pk)
    assert boom.exc_info is not None and boom.exc_info[0] is RuntimeError
    assert failed.user_id == "anonymous" and len(failed.connection_id) == 16
    line = json.loads(JSONFormatter().format(boom))
    assert line["connection_id"] == boom.connection_id
    assert line["user_id"] == str(user.pk)
    assert line["level"] == "ERROR" and "RuntimeError" in line["exc_info"]


def test_context_filter_fills_other_records():
    record = logging.makeLogRecord({"msg": "plain %s", "args": ("line",)})
    assert ContextFilter().filter(record)
    formatter = logging.Formatter("%(connection_id)s %(user_id)s %(message)s")
    assert formatter.format(record) == "- - plain line"


async def _ticket(user):
    from asgiref.sync import sync_to_async

    return await sync_to_async(issue_ticket)(user)
