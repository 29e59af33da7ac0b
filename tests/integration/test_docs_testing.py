"""The examples of docs/testing.md, run as they are printed there.

``test_the_page_shows_only_code_from_this_file`` fails when a Python block of the
page is not found here, so the page cannot drift from what runs in CI. Imports of the
example app's own modules (``from orders...``) are left out: the app is this file.
"""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"

# -- the example app ------------------------------------------------------------------

# orders/events.py
import realtime
from rest_framework import serializers


@realtime.event("order.shipped", direction="server")
class OrderShipped(serializers.Serializer):
    order = serializers.IntegerField()
    carrier = serializers.CharField(max_length=50)


@realtime.event("order.note", direction="both")
class OrderNote(serializers.Serializer):
    order = serializers.IntegerField()
    text = serializers.CharField(max_length=500)


# orders/consumers.py
import realtime
from realtime.consumers import RealtimeConsumer
from realtime.permissions import IsAuthenticated


class OrderConsumer(RealtimeConsumer):
    permission_classes = [IsAuthenticated]
    subscriptions = {"orders.{pk}": [IsAuthenticated]}

    @realtime.handler("order.note")
    async def note(self, message):
        group = f"orders.{message.data['order']}"
        await self.notify(group, "order.note", message.data)
        return {"stored": True}


# orders/services.py
import realtime
from django.db import transaction


def ship(order_id, carrier):
    with transaction.atomic():
        ...  # update the order's row
        realtime.notify(
            f"orders.{order_id}",
            "order.shipped",
            {"order": order_id, "carrier": carrier},
        )


# -- the examples -----------------------------------------------------------------

# orders/tests.py
import pytest
from django.db import transaction

from realtime.testing import capture_notifications


@pytest.mark.django_db
def test_shipping_notifies_the_order_group():
    with capture_notifications() as sent:
        ship(7, carrier="UPS")
    assert sent == [
        {
            "group": "orders.7",
            "type": "order.shipped",
            "v": 1,
            "seq": None,
            "data": {"order": 7, "carrier": "UPS"},
            "sent": False,  # waits for the test's transaction, which never commits
        }
    ]


@pytest.mark.django_db(transaction=True)
def test_the_event_leaves_when_the_transaction_commits():
    with capture_notifications() as sent:
        ship(7, carrier="UPS")
    assert [event["type"] for event in sent.sent] == ["order.shipped"]
    assert sent.waiting == []


@pytest.mark.django_db
def test_nothing_is_sent_after_a_rollback():
    with (
        capture_notifications() as sent,
        pytest.raises(ValueError),
        transaction.atomic(),
    ):
        ship(7, carrier="UPS")
        raise ValueError("payment refused")
    assert sent == []


# orders/tests.py
from asgiref.sync import sync_to_async

from realtime.testing import RealtimeCommunicator


@pytest.mark.django_db(transaction=True)
async def test_a_note_reaches_everyone_on_the_order(django_user_model):
    user = await sync_to_async(django_user_model.objects.create_user)("ann")
    comm = RealtimeCommunicator(OrderConsumer.as_asgi(), "/ws/", user=user)
    connected, _ = await comm.connect()  # reads rt.welcome into comm.welcome
    assert connected
    ack = await comm.subscribe("orders.7")
    assert ack["type"] == "rt.ack"
    reply = await comm.request("order.note", {"order": 7, "text": "At the door"})
    assert reply["data"] == {"stored": True}
    # The broadcast may come before the ack: request() queued it for us.
    event = await comm.receive_event("order.note")
    assert event["data"] == {"order": 7, "text": "At the door"}
    await comm.disconnect()


# -- the page shows only what runs here -----------------------------------------------


def test_the_page_shows_only_code_from_this_file():
    source = Path(__file__).read_text()
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 4
    for block in blocks:
        lines = [
            line for line in block.splitlines() if not line.startswith("from orders")
        ]
        code = "\n".join(lines).strip()
        assert code in source, f"docs/testing.md shows code not tested here:\n{code}"
