"""What a connection's set-up costs realtime: work done once per connection (or once
per process) instead of again and again."""

from __future__ import annotations

import re
import uuid

import pytest

from realtime import metrics
from realtime.testing import RealtimeCommunicator
from tests.asgi import application
from tests.testapp import consumers

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_connection_that_must_authenticate_builds_its_authenticators_once(
    monkeypatch,
):
    built = []
    original = consumers.AuthConsumer.get_authenticators

    def counted(self):
        built.append(self)
        return original(self)

    monkeypatch.setattr(consumers.AuthConsumer, "get_authenticators", counted)
    comm = RealtimeCommunicator(application, "/ws/auth/")
    assert (await comm.connect())[0]
    assert comm.welcome["data"]["auth_required"] is True
    assert len(built) == 1
    await comm.disconnect()


async def test_a_connection_id_is_16_random_hex_digits_drawn_without_uuid(monkeypatch):
    def no_uuid():
        raise AssertionError("uuid4 on the connect path")

    monkeypatch.setattr(uuid, "uuid4", no_uuid)
    ids = []
    for _ in range(2):
        comm = RealtimeCommunicator(application, "/ws/")
        assert (await comm.connect())[0]
        ids.append(comm.welcome["data"]["connection_id"])
        await comm.disconnect()
    assert all(re.fullmatch(r"[0-9a-f]{16}", id_) for id_ in ids)
    assert ids[0] != ids[1]


class CostConsumer:
    close_code = 1000


def test_connection_metrics_look_their_labels_up_once_per_consumer_class(monkeypatch):
    monkeypatch.setattr(metrics, "_connection_metrics", {})
    consumer = CostConsumer()
    label = metrics._consumer_label(consumer)  # type: ignore[arg-type]
    connects = metrics.CONNECTS.labels(label)
    open_ = metrics.CONNECTIONS_OPEN.labels(label)
    before = connects._value.get(), open_._value.get()
    looked_up = []
    for metric in (metrics.CONNECTS, metrics.CONNECTIONS_OPEN):
        original = metric.labels

        def counted(*labels, _original=original):
            looked_up.append(labels)
            return _original(*labels)

        monkeypatch.setattr(metric, "labels", counted)
    for _ in range(3):
        metrics.connection_opened(consumer)  # type: ignore[arg-type]
        metrics.connection_closed(consumer)  # type: ignore[arg-type]
    assert looked_up == [(label,), (label,)]  # the first connection's, then none
    assert (connects._value.get(), open_._value.get()) == (before[0] + 3, before[1])
