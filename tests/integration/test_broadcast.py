"""broadcast_model(): created/updated/deleted events after commit, registered types."""

import pytest
from channels.db import database_sync_to_async
from django.db import transaction
from rest_framework import serializers

import realtime
from realtime.broadcast import ACTIONS
from realtime.exceptions import RealtimeConfigError
from realtime.schema import registry
from realtime.testing import RealtimeCommunicator, capture_notifications
from tests.asgi import application
from tests.testapp.models import Comment

pytestmark = pytest.mark.django_db(transaction=True)


class CommentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Comment
        fields = ["id", "post_id", "text", "author"]


@pytest.fixture
def broadcasting():
    def start(**kw):
        kw.setdefault("group", lambda c: f"public.{c.post_id}")
        disconnects.append(
            realtime.broadcast_model(Comment, serializer=CommentSerializer, **kw)
        )

    disconnects = []
    yield start
    for disconnect in disconnects:
        disconnect()
    for action in ACTIONS:
        registry.unregister(f"comment.{action}")


@pytest.fixture
def author(django_user_model):
    return django_user_model.objects.create_user("ann")


def test_event_types_are_registered_as_server_events(broadcasting):
    broadcasting()
    for action in ACTIONS:
        spec = registry.get(f"comment.{action}")
        assert spec.direction == "server"
        assert spec.serializer_class is CommentSerializer


def test_created_updated_deleted_after_commit(broadcasting, author):
    broadcasting()
    with capture_notifications() as sent:
        with transaction.atomic():
            comment = Comment.objects.create(post_id=7, text="hi", author=author)
            assert [s["sent"] for s in sent] == [False]  # waits for the commit
        comment.text = "edited"
        comment.save()
        pk = comment.pk
        comment.delete()
    row = {"id": pk, "post_id": 7, "author": author.pk}
    assert all(s["sent"] for s in sent)
    assert [(s["type"], s["group"], s["data"]) for s in sent] == [
        ("comment.created", "public.7", {**row, "text": "hi"}),
        ("comment.updated", "public.7", {**row, "text": "edited"}),
        ("comment.deleted", "public.7", {**row, "text": "edited"}),
    ]


def test_nothing_is_sent_after_rollback(broadcasting, author):
    broadcasting()
    with (
        capture_notifications() as sent,
        pytest.raises(ValueError),
        transaction.atomic(),
    ):
        Comment.objects.create(post_id=7, text="hi", author=author)
        raise ValueError
    assert sent == []


def test_type_prefix_and_disconnect(author):
    disconnect = realtime.broadcast_model(
        Comment,
        group=lambda c: f"public.{c.post_id}",
        serializer=CommentSerializer,
        type_prefix="note",
    )
    try:
        with capture_notifications() as sent:
            Comment.objects.create(post_id=1, text="a", author=author)
            disconnect()
            Comment.objects.create(post_id=1, text="b", author=author)
        assert [(s["type"], s["data"]["text"]) for s in sent] == [("note.created", "a")]
    finally:
        disconnect()
        for action in ACTIONS:
            registry.unregister(f"note.{action}")


async def test_a_subscriber_receives_the_change(broadcasting, author):
    broadcasting()
    comm = RealtimeCommunicator(application, "/ws/")
    assert (await comm.connect())[0]
    assert (await comm.subscribe("public.9"))["type"] == "rt.ack"

    def create():
        with transaction.atomic():
            return Comment.objects.create(post_id=9, text="live", author=author)

    comment = await database_sync_to_async(create)()
    frame = await comm.receive_frame(5)
    assert frame["type"] == "comment.created"
    assert frame["data"] == {
        "id": comment.pk,
        "post_id": 9,
        "text": "live",
        "author": author.pk,
    }
    await comm.disconnect()


def test_several_groups_per_object(broadcasting, author):
    # Staff see every comment; the author sees their own.
    broadcasting(group=lambda c: ("comments.staff", f"user.{c.author_id}"))
    with capture_notifications() as sent:
        Comment.objects.create(post_id=7, text="hi", author=author)
    assert [(s["group"], s["data"]["text"], s["sent"]) for s in sent] == [
        ("comments.staff", "hi", True),
        (f"user.{author.pk}", "hi", True),
    ]


def test_a_fixed_group_name(broadcasting, author):
    broadcasting(group="comments.all")
    with capture_notifications() as sent:
        Comment.objects.create(post_id=7, text="hi", author=author)
    assert [s["group"] for s in sent] == ["comments.all"]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"group": 42}, "group must be a group name or a function"),
        ({"group": "bad group!"}, "group"),
        ({"group": lambda: "x"}, "group must take one argument"),
        ({"serializer": dict}, "serializer must be a DRF serializer class"),
        ({"on_commit": "yes"}, "on_commit must be True, False or None"),
    ],
)
def test_arguments_are_checked_at_registration(kw, message):
    arguments = {"group": lambda c: "x", "serializer": CommentSerializer, **kw}
    with pytest.raises(RealtimeConfigError, match=message):
        realtime.broadcast_model(Comment, **arguments)
    assert "comment.created" not in registry


def test_a_model_instance_instead_of_a_class_is_refused():
    with pytest.raises(RealtimeConfigError, match="model must be a Django model"):
        realtime.broadcast_model(Comment(), group="x", serializer=CommentSerializer)


def test_a_group_function_returning_a_non_name_fails_clearly(broadcasting, author):
    broadcasting(group=lambda c: [f"user.{c.author_id}", None])
    with pytest.raises(RealtimeConfigError, match="expected group names"):
        Comment.objects.create(post_id=7, text="hi", author=author)
