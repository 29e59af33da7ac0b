"""The durable inbox: notify_user(persist=True) and the DRF API."""

import pytest
from channels.db import database_sync_to_async
from django.urls import reverse
from rest_framework.test import APIClient

import realtime
from realtime.inbox.models import Notification
from realtime.inbox.store import store
from realtime.testing import RealtimeCommunicator
from tests.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ann(django_user_model):
    return django_user_model.objects.create_user("ann")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob")


def client_for(user):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def test_api_requires_authentication():
    client = client_for(None)
    # 403, not 401: SessionAuthentication, first in the test settings, names no
    # WWW-Authenticate scheme.
    refused = {"detail": "Authentication credentials were not provided."}
    for name in ("realtime_inbox:list", "realtime_inbox:unread-count"):
        response = client.get(reverse(name))
        assert (response.status_code, response.json()) == (403, refused)
    response = client.post(reverse("realtime_inbox:read-all"))
    assert (response.status_code, response.json()) == (403, refused)


def test_list_is_own_newest_first_and_paginated(ann, bob):
    for i in range(25):
        store(ann, "test.note", {"text": f"n{i}"}, 1)
    store(bob, "test.note", {"text": "bob's"}, 1)
    page = client_for(ann).get(reverse("realtime_inbox:list")).json()
    assert page["count"] == 25
    assert [n["data"]["text"] for n in page["results"][:2]] == ["n24", "n23"]
    assert len(page["results"]) == 20 and page["next"]
    rest = client_for(ann).get(page["next"]).json()
    assert [n["data"]["text"] for n in rest["results"]][-1] == "n0"
    small = client_for(ann).get(reverse("realtime_inbox:list"), {"page_size": 5})
    assert len(small.json()["results"]) == 5
    assert client_for(bob).get(reverse("realtime_inbox:list")).json()["count"] == 1


def test_unread_filter_count_and_mark_read(ann, bob):
    first = store(ann, "test.note", {"text": "a"}, 1)
    store(ann, "test.note", {"text": "b"}, 1)
    theirs = store(bob, "test.note", {"text": "c"}, 1)
    api = client_for(ann)
    count_url = reverse("realtime_inbox:unread-count")
    assert api.get(count_url).json() == {"unread": 2}

    reply = api.post(reverse("realtime_inbox:read", args=[first.pk]))
    assert reply.status_code == 200 and reply.json()["read"] is True
    read_at = reply.json()["read_at"]
    # Marking again keeps the first read time.
    again = api.post(reverse("realtime_inbox:read", args=[first.pk])).json()
    assert again["read_at"] == read_at
    assert api.get(count_url).json() == {"unread": 1}
    unread = api.get(reverse("realtime_inbox:list"), {"unread": "1"}).json()
    assert [n["data"]["text"] for n in unread["results"]] == ["b"]

    # Another user's notification is invisible: 404, and it stays unread.
    assert api.post(reverse("realtime_inbox:read", args=[theirs.pk])).status_code == 404
    assert (
        api.get(reverse("realtime_inbox:detail", args=[theirs.pk])).status_code == 404
    )
    assert api.post(reverse("realtime_inbox:read-all")).json() == {"marked": 1}
    assert api.get(count_url).json() == {"unread": 0}
    assert client_for(bob).get(count_url).json() == {"unread": 1}


def test_persist_while_offline_is_found_in_the_api(ann):
    stored = realtime.notify_user(
        ann, "test.note", {"text": "while away"}, persist=True
    )
    assert isinstance(stored, Notification) and stored.user_id == ann.pk
    page = client_for(ann).get(reverse("realtime_inbox:list")).json()
    assert [
        (n["type"], n["version"], n["data"], n["read"]) for n in page["results"]
    ] == [("test.note", 1, {"text": "while away"}, False)]


def test_persist_by_pk_and_rolled_back_with_the_transaction(ann):
    from django.db import transaction

    with pytest.raises(ValueError), transaction.atomic():
        realtime.notify_user(ann.pk, "test.note", {"text": "x"}, persist=True)
        raise ValueError
    assert not Notification.objects.exists()
    realtime.notify_user(ann.pk, "test.note", {"text": "y"}, persist=True)
    assert Notification.objects.get().data == {"text": "y"}


async def test_persist_while_online_pushes_live_and_stores(ann):
    comm = RealtimeCommunicator(application, "/ws/", user=ann)
    assert (await comm.connect())[0]
    await database_sync_to_async(realtime.notify_user)(
        ann, "test.note", {"text": "now"}, persist=True
    )
    frame = await comm.receive_frame(5)
    while frame["type"] == "rt.ping":
        frame = await comm.receive_frame(5)
    assert (frame["type"], frame["group"], frame["data"]) == (
        "test.note",
        f"user.{ann.pk}",
        {"text": "now"},
    )
    rows = await database_sync_to_async(list)(Notification.objects.values("data"))
    assert rows == [{"data": {"text": "now"}}]
    await comm.disconnect()


async def test_anotify_user_persists_too(ann):
    stored = await realtime.anotify_user(
        ann, "test.note", {"text": "async"}, persist=True
    )
    row = await Notification.objects.aget(user=ann)  # the only one
    assert (row.pk, row.data) == (stored.pk, {"text": "async"})
