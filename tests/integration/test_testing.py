"""realtime.testing: the communicator hands over every frame, and
capture_notifications() records what was sent and what waits for a commit."""

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction
from rest_framework import serializers

import realtime
from realtime.broadcast import ACTIONS
from realtime.schema import registry
from realtime.testing import RealtimeCommunicator, capture_notifications
from tests.asgi import application
from tests.testapp.models import Comment


async def connect(**kw):
    comm = RealtimeCommunicator(application, "/ws/", **kw)
    connected, _ = await comm.connect()
    assert connected
    return comm


# -- the communicator ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_broadcast_that_beat_the_ack_is_the_next_frame():
    comm = await connect()
    await comm.subscribe("public.t")
    # The handler notifies its own group, then returns: the event arrives first.
    reply = await comm.request("test.say", {"group": "public.t", "text": "hi"})
    assert reply["type"] == "rt.ack"
    frame = await comm.receive_frame(timeout=1)
    assert (frame["type"], frame["data"]["text"]) == ("test.say", "hi")
    assert comm.events == []
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_receive_event_steps_over_presence_and_keeps_other_events(
    django_user_model,
):
    user = await sync_to_async(django_user_model.objects.create_user)("ann")
    comm = await connect(user=user)
    assert (await comm.subscribe("room.1"))["type"] == "rt.ack"
    await comm.request("test.say", {"group": "room.1", "text": "one"})
    await comm.request("test.say", {"group": "room.1", "text": "two", "n": 2})
    await sync_to_async(realtime.notify)("room.1", "test.note", {"text": "note"})
    note = await comm.receive_event("test.note", timeout=5)
    assert note["data"] == {"text": "note"}
    first = await comm.receive_event()
    second = await comm.receive_event(group="room.1")
    assert [first["data"]["text"], second["data"]["text"]] == ["one", "two"]
    # The presence frame of the connection itself was stepped over, not lost.
    assert [frame["type"] for frame in comm.events] == ["rt.presence.join"]
    assert not await comm.receive_nothing()
    assert (await comm.receive_frame())["type"] == "rt.presence.join"
    assert await comm.receive_nothing()
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_receive_event_times_out_naming_what_arrived():
    comm = await connect()
    await comm.subscribe("public.t")
    await comm.request("test.say", {"group": "public.t", "text": "hi"})
    with pytest.raises(TimeoutError, match=r"no test.note within 0.3s.*'test.say'"):
        await comm.receive_event("test.note", timeout=0.3)


# -- capture_notifications() --------------------------------------------------------


@pytest.mark.django_db
def test_under_the_default_django_db_events_are_recorded_as_waiting():
    with capture_notifications() as sent:
        realtime.notify("public.a", "test.note", {"text": "a"})
        realtime.notify("public.b", "test.note", {"text": "b"}, on_commit=False)
    assert [(e["group"], e["sent"]) for e in sent] == [
        ("public.a", False),
        ("public.b", True),
    ]
    assert [e["group"] for e in sent.waiting] == ["public.a"]
    assert [e["group"] for e in sent.sent] == ["public.b"]


@pytest.mark.django_db
def test_a_waiting_event_becomes_sent_when_the_callbacks_run(
    django_capture_on_commit_callbacks,
):
    with (
        capture_notifications() as sent,
        django_capture_on_commit_callbacks(execute=True),
    ):
        realtime.notify("public.a", "test.note", {"text": "a"})
        assert sent[0]["sent"] is False
    assert [(e["group"], e["sent"], e["seq"]) for e in sent] == [("public.a", True, 1)]


@pytest.mark.django_db
def test_a_savepoint_rollback_removes_only_its_events():
    with capture_notifications() as sent:
        realtime.notify("public.kept", "test.note", {"text": "kept"})
        with pytest.raises(ValueError), transaction.atomic():
            realtime.notify("public.gone", "test.note", {"text": "gone"})
            raise ValueError
    assert [e["group"] for e in sent] == ["public.kept"]


@pytest.mark.django_db(transaction=True)
def test_nested_captures_each_see_the_event_once():
    with capture_notifications() as outer:
        with capture_notifications() as inner, transaction.atomic():
            realtime.notify("public.a", "test.note", {"text": "a"})
        realtime.notify("public.b", "test.note", {"text": "b"})
    assert [(e["group"], e["sent"]) for e in inner] == [("public.a", True)]
    assert [(e["group"], e["sent"]) for e in outer] == [
        ("public.a", True),
        ("public.b", True),
    ]


@pytest.mark.django_db
def test_notify_user_with_persist_is_recorded(django_user_model):
    user = django_user_model.objects.create_user("ann")
    with capture_notifications() as sent:
        realtime.notify_user(user, "test.note", {"text": "paid"}, persist=True)
    assert [(e["group"], e["data"], e["sent"]) for e in sent] == [
        (f"user.{user.pk}", {"text": "paid"}, False)
    ]


class CommentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Comment
        fields = ["id", "post_id", "text"]


@pytest.mark.django_db
def test_broadcast_model_events_are_recorded_for_each_group(django_user_model):
    author = django_user_model.objects.create_user("ann")
    disconnect = realtime.broadcast_model(
        Comment,
        group=lambda c: ["comments.staff", f"user.{c.author_id}"],
        serializer=CommentSerializer,
        type_prefix="tcomment",
    )
    try:
        with capture_notifications() as sent:
            Comment.objects.create(post_id=3, text="hi", author=author)
    finally:
        disconnect()
        for action in ACTIONS:
            registry.unregister(f"tcomment.{action}")
    assert [(e["type"], e["group"], e["sent"]) for e in sent] == [
        ("tcomment.created", "comments.staff", False),
        ("tcomment.created", f"user.{author.pk}", False),
    ]


def test_after_the_capture_notify_is_untouched():
    from realtime import publishing as module

    before = (module.send_sync, module._maybe_on_commit)
    with capture_notifications():
        assert (module.send_sync, module._maybe_on_commit) != before
    assert (module.send_sync, module._maybe_on_commit) == before
