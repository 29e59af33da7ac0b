"""A connection's one state (realtime.connection.ConnectionState): every transition,
recorded on a real consumer driven through Channels' communicator."""

from __future__ import annotations

import asyncio
import time

import pytest

import realtime
from realtime import status
from realtime.auth import issue_ticket
from realtime.connection import ConnectionState
from realtime.consumers import RealtimeConsumer
from realtime.exceptions import PermissionDenied
from realtime.permissions import IsAuthenticated
from realtime.testing import RealtimeCommunicator

pytestmark = pytest.mark.django_db(transaction=True)

CONNECTING, AUTHENTICATING, OPEN, CLOSING, CLOSED = ConnectionState
ORDER = list(ConnectionState)


class Recording(RealtimeConsumer):
    """Records every state it is put in; the instances are kept for the test."""

    made: list[Recording] = []
    subscriptions = {"public.{name}": []}

    @property  # type: ignore[override]
    def state(self) -> ConnectionState:
        return self.__dict__.get("_state", CONNECTING)

    @state.setter
    def state(self, value: ConnectionState) -> None:
        if value is CONNECTING:
            self.made.append(self)
            self.transitions: list[ConnectionState] = []
        self.transitions.append(value)
        self._state = value


class MustAuthenticate(Recording):
    permission_classes = [IsAuthenticated]


class RefusesOnConnect(Recording):
    async def on_connect(self) -> None:
        raise PermissionDenied("not today")


@pytest.fixture(autouse=True)
def _fresh():
    Recording.made.clear()


def moves_forward(transitions: list[ConnectionState]) -> bool:
    positions = [ORDER.index(state) for state in transitions]
    return positions == sorted(set(positions))


async def open_connection(cls: type[Recording] = Recording, **kw):
    comm = RealtimeCommunicator(cls.as_asgi(), "/ws/", **kw)
    connected, _ = await comm.connect()
    assert connected
    return comm, Recording.made[-1]


async def test_open_then_closed_by_the_client():
    comm, consumer = await open_connection()
    assert consumer.state is OPEN
    assert comm.welcome["data"]["auth_required"] is False
    await comm.disconnect()
    assert consumer.transitions == [CONNECTING, OPEN, CLOSED]
    assert consumer not in consumer.hub.connections
    assert list(consumer.subs) == []


async def test_authenticating_until_rt_auth_then_open(django_user_model):
    alice = await django_user_model.objects.acreate(username="alice")
    comm, consumer = await open_connection(MustAuthenticate)
    assert consumer.state is AUTHENTICATING
    assert comm.welcome["data"]["auth_required"] is True
    # Only the frames open to an unauthenticated connection are answered.
    refused = await comm.request("rt.subscribe", {"group": "public.a"})
    assert refused["data"]["code"] == "not_authenticated"
    await comm.send_frame({"type": "rt.ping", "id": "p", "data": {}})
    assert await comm.receive_frame() == {"type": "rt.pong", "id": "p", "data": {}}
    assert consumer.personal_group is None
    reply = await comm.request("rt.auth", {"token": issue_ticket(alice)})
    assert reply["type"] == "rt.ack"
    assert reply["data"]["user"]["username"] == "alice"
    assert consumer.state is OPEN
    assert consumer.personal_group in consumer.subs  # joined once authenticated
    await comm.disconnect()
    assert consumer.transitions == [CONNECTING, AUTHENTICATING, OPEN, CLOSED]


async def test_no_rt_auth_in_time_closes_with_4401_through_closing():
    comm, consumer = await open_connection(MustAuthenticate)
    consumer.tick(time.monotonic() + 60)  # past AUTH_TIMEOUT
    error = await comm.receive_frame()
    assert error["data"]["code"] == "not_authenticated"
    closed = await comm.receive_output(3)
    assert closed == {"type": "websocket.close", "code": 4401}
    assert consumer.transitions == [CONNECTING, AUTHENTICATING, CLOSING, CLOSED]
    await comm.wait(3)


async def test_refused_by_on_connect_closes_after_opening():
    comm, consumer = await open_connection(RefusesOnConnect)
    error = await comm.receive_frame()
    assert error["data"] == {"code": "forbidden", "message": "not today"}
    closed = await comm.receive_output(3)
    assert closed == {"type": "websocket.close", "code": status.WS_4403_FORBIDDEN}
    await comm.wait(3)
    assert consumer.transitions == [CONNECTING, OPEN, CLOSING, CLOSED]


async def test_refused_at_the_handshake_is_never_open():
    comm = RealtimeCommunicator(
        MustAuthenticate.as_asgi(), "/ws/", headers=[(b"authorization", b"Token nope")]
    )
    connected, _ = await comm.connect()
    assert connected  # accepted only to say why
    assert comm.events[0]["data"]["code"] == "not_authenticated"
    closed = await comm.receive_output(3)
    assert closed["code"] == status.WS_4401_NOT_AUTHENTICATED
    await comm.wait(3)
    (consumer,) = Recording.made
    assert consumer.transitions == [CONNECTING, CLOSING, CLOSED]


async def test_closing_lets_queued_frames_out_then_closes_once():
    comm, consumer = await open_connection()
    await comm.subscribe("public.a")
    gate = asyncio.Event()
    server_send = consumer.outbox.send

    async def stalled(message: dict) -> None:
        await gate.wait()
        await server_send(message)

    consumer.outbox.send = stalled
    consumer.outbox.write('{"type":"test.note","data":{"n":1}}')
    closing = asyncio.ensure_future(consumer.close(code=status.WS_1000_NORMAL_CLOSURE))
    await asyncio.sleep(0.05)
    assert consumer.state is CLOSING
    await consumer.close(code=4000)  # a second close while closing does nothing
    assert not closing.done()
    gate.set()
    await asyncio.wait_for(closing, 3)
    assert consumer.state is CLOSED
    assert (await comm.receive_frame())["data"] == {"n": 1}
    assert await comm.receive_output(3) == {"type": "websocket.close", "code": 1000}
    assert consumer.close_code == 1000
    assert consumer.transitions == [CONNECTING, OPEN, CLOSING, CLOSED]
    await comm.wait(3)


async def test_a_connection_found_too_slow_gets_no_more_events():
    comm, consumer = await open_connection()
    await comm.subscribe("public.a")
    consumer.outbox.too_slow()  # as when MAX_PENDING_BYTES is passed
    await realtime.anotify("public.a", "test.note", {"text": "dropped"})
    error = await comm.receive_frame()  # no event before the error
    assert error["data"]["code"] == "slow_consumer"
    closed = await comm.receive_output(3)
    assert closed == {"type": "websocket.close", "code": 4507}
    await comm.wait(3)
    assert consumer.transitions == [CONNECTING, OPEN, CLOSING, CLOSED]


async def test_every_transition_moves_down_the_list():
    for transitions in (
        [CONNECTING, OPEN, CLOSED],
        [CONNECTING, AUTHENTICATING, OPEN, CLOSING, CLOSED],
        [CONNECTING, CLOSING, CLOSED],
    ):
        assert moves_forward(transitions)
    assert not moves_forward([CONNECTING, OPEN, AUTHENTICATING])
    comm, consumer = await open_connection()
    await comm.disconnect()
    assert moves_forward(consumer.transitions)
