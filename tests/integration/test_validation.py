"""Incoming validation through the consumer: a nested payload reaches the handler
validated, and its errors come back under rt.error's errors, field by field
(tests/unit/test_schema.py: the registry itself)."""

import pytest
from django.urls import path

import realtime
from realtime.asgi import websocket_app
from realtime.consumers import RealtimeConsumer
from realtime.testing import RealtimeCommunicator

# Importing the module registers schema_test.order, the event validated here.
from tests.unit.test_schema import GOOD_ORDER

pytestmark = pytest.mark.django_db(transaction=True)


class OrderConsumer(RealtimeConsumer):
    @realtime.handler("schema_test.order")
    async def order(self, message):
        # What the handler sees is validated data: nested parts are plain dicts.
        return {"lines": len(message.data["lines"]), "city": message.data["ship_to"]}


application = websocket_app([path("ws/", OrderConsumer.as_asgi())])


async def order_request(data, **kw):
    comm = RealtimeCommunicator(application, "/ws/")
    assert (await comm.connect())[0]
    try:
        return await comm.request("schema_test.order", data, **kw)
    finally:
        await comm.disconnect()


async def test_nested_payload_reaches_handler_validated():
    reply = await order_request(GOOD_ORDER)
    assert reply["type"] == "rt.ack", reply
    assert reply["data"] == {"lines": 1, "city": {"city": "Lyon", "zip": "69001"}}


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        (
            {"ship_to": {"city": "Lyon"}},
            {"ship_to": {"zip": ["This field is required."]}},
        ),
        (
            {"ship_to": "Lyon"},
            {
                "ship_to": {
                    "non_field_errors": [
                        "Invalid data. Expected a dictionary, but got str."
                    ]
                }
            },
        ),
        (
            {"lines": []},
            {"lines": {"non_field_errors": ["This list may not be empty."]}},
        ),
        (
            {"lines": [{"sku": "tea", "qty": 2}, {"sku": "x y", "qty": 0}]},
            {
                "lines": {
                    "1": {
                        "sku": [
                            'Enter a valid "slug" consisting of letters, numbers, '
                            "underscores or hyphens."
                        ],
                        "qty": ["Ensure this value is greater than or equal to 1."],
                    },
                }
            },
        ),
        (
            {"tags": ["a", "b", "c", "d"]},
            {"tags": ["Ensure this field has no more than 3 elements."]},
        ),
        (
            {"tags": ["x" * 11]},
            {"tags": {"0": ["Ensure this field has no more than 10 characters."]}},
        ),
        (
            {"extra": {"points": "many"}},
            {"extra": {"points": ["A valid integer is required."]}},
        ),
        (
            {"bill_to": {"city": "Lyon", "zip": "1"}},
            {"bill_to": {"zip": ["This value does not match the required pattern."]}},
        ),
    ],
)
async def test_nested_errors_come_back_under_errors(change, errors):
    reply = await order_request({**GOOD_ORDER, **change})
    assert reply["type"] == "rt.error"
    assert reply["data"]["code"] == "invalid"
    assert reply["data"]["errors"] == errors


async def test_null_and_read_only_fields_on_input():
    # allow_null accepts null; a read-only field sent by a client is ignored.
    reply = await order_request({**GOOD_ORDER, "bill_to": None, "author": "mallory"})
    assert reply["type"] == "rt.ack", reply
