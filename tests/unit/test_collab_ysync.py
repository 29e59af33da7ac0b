"""y-protocols messages: strict decoding of sync and awareness messages."""

import pycrdt
import pytest

from realtime.collab import ysync


def test_sync_message_round_trip_matches_y_protocols_layout():
    doc = pycrdt.Doc()
    doc.get("content", type=pycrdt.Text).insert(0, "hi")
    update = doc.get_update()
    message = ysync.encode_sync(ysync.UPDATE, update)
    # writeVarUint(2) then writeVarUint8Array(update)
    assert message == bytes([2, len(update)]) + update
    assert ysync.decode_sync(message) == (ysync.UPDATE, update)


def test_long_lengths_use_several_varuint_bytes():
    payload = b"x" * 300
    message = ysync.encode_sync(ysync.STEP2, payload)
    assert message[:3] == bytes([1, 0xAC, 0x02])
    assert ysync.decode_sync(message) == (ysync.STEP2, payload)


@pytest.mark.parametrize(
    "message",
    [
        b"",  # nothing
        b"\x07\x00",  # unknown kind
        b"\x02\x05abc",  # payload shorter than announced
        b"\x02\x01ab",  # bytes after the payload
        b"\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # varuint that never ends
    ],
)
def test_malformed_sync_messages_are_refused(message):
    with pytest.raises(ysync.Malformed):
        ysync.decode_sync(message)


def test_awareness_round_trip():
    entries = [
        (12, 3, {"cursor": {"anchor": 1}, "user": {"color": "#f00"}}),
        (7, 9, None),
    ]
    assert ysync.decode_awareness(ysync.encode_awareness(entries)) == entries


@pytest.mark.parametrize(
    "message",
    [
        b"\x01\x01\x01\x03{a}",  # state is not JSON
        b"\x01\x01\x01\x05{}",  # state shorter than announced
        b"\x02\x01\x01\x02{}",  # two clients announced, one present
        bytes([65]) + b"\x01\x01\x02{}" * 65,  # too many clients at once
    ],
)
def test_malformed_awareness_updates_are_refused(message):
    with pytest.raises(ysync.Malformed):
        ysync.decode_awareness(message)
