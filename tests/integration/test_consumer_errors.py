"""Client-facing errors through the consumer: a handler's DRF-style ValidationFailed
becomes rt.error invalid, and a failed rt.auth answers with the frame's id before
closing."""

import pytest
from channels.db import database_sync_to_async
from rest_framework import serializers
from rest_framework.authtoken.models import Token

import realtime
from realtime import status
from realtime.consumers import RealtimeConsumer
from realtime.exceptions import ValidationFailed
from realtime.permissions import IsAuthenticated, IsStaff
from realtime.testing import RealtimeCommunicator
from tests.asgi import application


@realtime.event("exc_test.order", direction="client")
class Order(serializers.Serializer):
    id = serializers.IntegerField()


class OrderConsumer(RealtimeConsumer):
    @realtime.handler("exc_test.order")
    async def order(self, message):
        if message.data["id"] == 1:
            raise ValidationFailed({"id": ["No such order."]})
        if message.data["id"] == 2:
            raise ValidationFailed(["Order is closed.", "Try another."])
        raise ValidationFailed("Order is closed.")


class StaffOnly(RealtimeConsumer):
    permission_classes = [IsAuthenticated, IsStaff]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("order", "message", "errors"),
    [
        (1, "Invalid data.", {"id": ["No such order."]}),
        (
            2,
            "Order is closed.; Try another.",
            {"non_field_errors": ["Order is closed.", "Try another."]},
        ),
        (3, "Order is closed.", None),
    ],
)
async def test_a_handler_raising_drf_style_detail_sends_invalid(order, message, errors):
    comm = RealtimeCommunicator(OrderConsumer.as_asgi(), "/ws/")
    assert (await comm.connect())[0]
    reply = await comm.request("exc_test.order", {"id": order})
    expected = {"code": "invalid", "message": message}
    if errors is not None:
        expected["errors"] = errors
    assert reply == {"type": "rt.error", "id": reply["id"], "data": expected}
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_failed_rt_auth_echoes_the_frame_id_then_closes_4401():
    comm = RealtimeCommunicator(application, "/ws/auth/")
    assert (await comm.connect())[0]
    assert comm.welcome["data"]["auth_required"] is True
    reply = await comm.request("rt.auth", {"token": "wrong"})
    assert reply["type"] == "rt.error"
    assert reply["data"]["code"] == "not_authenticated"
    assert (await comm.receive_output(3)) == {
        "type": "websocket.close",
        "code": status.WS_4401_NOT_AUTHENTICATED,
    }


@pytest.mark.django_db(transaction=True)
async def test_rt_auth_refused_by_a_permission_echoes_the_id_then_closes_4403(
    django_user_model,
):
    def make_token():
        user = django_user_model.objects.create_user("bob")
        return Token.objects.create(user=user).key

    token = await database_sync_to_async(make_token)()
    comm = RealtimeCommunicator(StaffOnly.as_asgi(), "/ws/")
    assert (await comm.connect())[0]
    reply = await comm.request("rt.auth", {"token": token})
    assert reply["type"] == "rt.error"
    assert reply["data"]["code"] == "forbidden"
    assert (await comm.receive_output(3))["code"] == status.WS_4403_FORBIDDEN
