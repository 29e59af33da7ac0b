"""Every publisher's event reaches a socket as the frame ``frames.EventFrame`` builds,
byte for byte: notify(), anotify(), notify_user(), broadcast_model(), presence
changes and ephemeral relays all take the one pipeline."""

from __future__ import annotations

import orjson
import pytest
from channels.db import database_sync_to_async
from rest_framework import serializers

import realtime
from realtime.broadcast import ACTIONS
from realtime.frames import EventFrame
from realtime.schema import registry
from realtime.testing import RealtimeCommunicator
from tests.asgi import application
from tests.testapp.models import Comment

pytestmark = pytest.mark.django_db(transaction=True)

GROUP = "public.frames"


class CommentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Comment
        fields = ["id", "post_id", "text"]


async def connected(user) -> RealtimeCommunicator:
    comm = RealtimeCommunicator(application, "/ws/", user=user)
    assert (await comm.connect())[0]
    return comm


async def next_text(comm: RealtimeCommunicator, type: str) -> str:
    """The next frame of ``type`` exactly as the socket received it."""
    while True:
        if comm.events:  # queued while a request waited: re-encoding would hide
            frame = comm.events.pop(0)  # the bytes, so none may be of ``type``
            assert frame["type"] != type, frame
            continue
        text = await comm.receive_from(5)
        if orjson.loads(text)["type"] == type:
            return text


def rebuilt(text: str) -> str:
    """``text`` as the frame builder makes it from the fields it carries."""
    frame = orjson.loads(text)
    built = EventFrame(frame["group"], frame["type"], frame["data"], frame.get("v"))
    return built.text(frame.get("seq"))


@pytest.fixture
def users(django_user_model):
    return (
        django_user_model.objects.create_user("ann"),
        django_user_model.objects.create_user("bob"),
    )


async def test_every_publisher_sends_the_builders_frame(users):
    ann, bob = users
    comm = await connected(ann)
    await comm.subscribe(GROUP)

    await realtime.anotify(GROUP, "test.note", {"text": "a"})
    text = await next_text(comm, "test.note")
    assert text == EventFrame(GROUP, "test.note", {"text": "a"}, 1).text(1)
    assert text == (
        '{"type":"test.note","v":1,"group":"public.frames","seq":1,"data":{"text":"a"}}'
    )

    await database_sync_to_async(realtime.notify)(GROUP, "test.note", {"text": "s"})
    text = await next_text(comm, "test.note")
    assert text == EventFrame(GROUP, "test.note", {"text": "s"}, 1).text(2)

    await database_sync_to_async(realtime.notify_user)(ann, "test.note", {"text": "u"})
    text = await next_text(comm, "test.note")
    assert text == EventFrame(f"user.{ann.pk}", "test.note", {"text": "u"}, 1).text(1)

    disconnect = realtime.broadcast_model(
        Comment, group=GROUP, serializer=CommentSerializer, on_commit=False
    )
    try:
        comment = await database_sync_to_async(Comment.objects.create)(
            post_id=1, text="c", author=ann
        )
        text = await next_text(comm, "comment.created")
    finally:
        disconnect()
        for action in ACTIONS:
            registry.unregister(f"comment.{action}")
    data = {"id": comment.pk, "post_id": 1, "text": "c"}
    assert text == EventFrame(GROUP, "comment.created", data, 1).text(3)

    other = await connected(bob)
    await other.subscribe(GROUP)
    joined = await next_text(comm, "rt.presence.join")
    assert orjson.loads(joined)["data"]["username"] == "bob"
    assert joined == rebuilt(joined) and '"seq"' not in joined

    await other.send_frame(
        {"type": "test.typing", "group": GROUP, "data": {"typing": 1}}
    )
    typing = await next_text(comm, "test.typing")
    assert orjson.loads(typing)["data"]["typing"] is True
    assert typing == rebuilt(typing) and '"seq"' not in typing

    await other.disconnect()
    left = await next_text(comm, "rt.presence.leave")
    assert left == rebuilt(left)
    await comm.disconnect()
