"""realtime.frames: the one builder of group-event frames and their layer message."""

from __future__ import annotations

import datetime
import decimal
import uuid

import orjson
import pytest
from django.utils.translation import gettext_lazy

from realtime.encoding import dumps
from realtime.frames import LAYER_EVENT, EventFrame, layer_message
from realtime.live import Event


def by_hand(frame: dict) -> str:
    """What a client must receive: the keys in the protocol's order, no spaces."""
    return dumps(frame).decode()


@pytest.mark.parametrize(
    ("v", "seq", "expected"),
    [
        (2, 7, {"type": "t.x", "v": 2, "group": "g.1", "seq": 7, "data": {"a": 1}}),
        (2, None, {"type": "t.x", "v": 2, "group": "g.1", "data": {"a": 1}}),
        (None, 7, {"type": "t.x", "group": "g.1", "seq": 7, "data": {"a": 1}}),
        (None, None, {"type": "t.x", "group": "g.1", "data": {"a": 1}}),
    ],
)
def test_text_is_the_protocols_frame(v, seq, expected):
    assert EventFrame("g.1", "t.x", {"a": 1}, v).text(seq) == by_hand(expected)


def test_the_seq_goes_between_prefix_and_suffix():
    # What a backend's append() and the Redis script store: prefix + seq + suffix.
    frame = EventFrame("room.1", "chat.message", {"text": "hi"}, 1)
    for seq in (1, 42, 10**12):
        assert frame.prefix + str(seq) + frame.suffix == frame.text(seq)
    assert frame.prefix.endswith(',"seq":')


def test_no_data_is_an_empty_object():
    assert orjson.loads(EventFrame("g", "t.x", None, None).text(None))["data"] == {}


def test_django_values_are_encoded_as_everywhere_else():
    data = {
        "when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        "price": decimal.Decimal("1.10"),
        "id": uuid.UUID(int=1),
        "label": gettext_lazy("hello"),
        "took": datetime.timedelta(seconds=90),
    }
    text = EventFrame("g", "t.x", data, 1).text(3)
    assert orjson.loads(text)["data"] == orjson.loads(dumps(data))
    assert orjson.loads(text)["data"]["price"] == "1.10"


def test_quotes_in_names_and_data_are_escaped():
    frame = EventFrame('g"1', 't"x', {"k": 'v"'}, None)
    assert orjson.loads(frame.text(1)) == {
        "type": 't"x',
        "group": 'g"1',
        "seq": 1,
        "data": {"k": 'v"'},
    }


def test_the_layer_message_is_what_the_hub_reads_back():
    frame = EventFrame("room.1", "chat.message", {"text": "hi"}, 2)
    message = frame.message(5, "ep0ch", exclude="conn-1")
    assert message == {
        "type": LAYER_EVENT,
        "group": "room.1",
        "event": "chat.message",
        "v": 2,
        "seq": 5,
        "epoch": "ep0ch",
        "text": frame.text(5),
        "exclude": "conn-1",
    }
    event = Event(message)
    assert (event.group, event.type, event.v, event.seq, event.epoch) == (
        "room.1",
        "chat.message",
        2,
        5,
        "ep0ch",
    )
    assert event.text == frame.text(5)
    assert event.exclude == "conn-1"
    assert "exclude" not in frame.message(5)


def test_layer_message_of_a_stored_frame_equals_the_frames_own():
    frame = EventFrame("g", "t.x", {"a": 1}, 1)
    assert layer_message("g", "t.x", 1, 9, frame.text(9), "e") == frame.message(9, "e")


def test_a_downgraded_variant_is_built_by_the_same_builder():
    # test.greet v2 -> v1 (tests/testapp/events.py): the variant an old client gets
    # is the frame EventFrame builds for v1 with the downgraded data, byte for byte.
    frame = EventFrame(
        "room.1", "test.greet", {"room": "r", "body": "b", "lang": "en"}, 2
    )
    event = Event(frame.message(4))
    variant = event.text_for(1)
    assert variant == EventFrame(
        "room.1", "test.greet", {"room": "r", "text": "b"}, 1
    ).text(4)
    assert event.text_for(2) == event.text_for(None) == frame.text(4)
