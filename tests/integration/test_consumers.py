"""RealtimeConsumer through Channels' communicator: envelope, acks, errors, limits."""

import orjson
import pytest
from django.test import override_settings

import realtime
from realtime import status
from realtime.testing import RealtimeCommunicator
from tests.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


async def connect(path="/ws/", **kw):
    comm = RealtimeCommunicator(application, path, **kw)
    connected, _ = await comm.connect()
    assert connected
    return comm


async def test_welcome_frame_comes_first():
    comm = await connect()
    welcome = comm.welcome
    assert welcome["type"] == "rt.welcome"
    assert welcome["data"]["protocol"] == 1
    assert welcome["data"]["user"] is None
    assert welcome["data"]["heartbeat"] == 25
    assert len(welcome["data"]["connection_id"]) == 16
    await comm.disconnect()


async def test_handler_reply_is_an_ack_with_the_client_id():
    comm = await connect()
    reply = await comm.request("test.echo", {"text": "hi"})
    assert reply == {
        "type": "rt.ack",
        "id": reply["id"],
        "data": {"text": "hi", "user": ""},
    }
    await comm.disconnect()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "bad_json"),
        ("", "bad_json"),
        ("NaN", "bad_json"),
        ('{"type": "test.echo", "data": {"text": "\\ud800"}}', "bad_json"),
        ("[" * 10_000 + "]" * 10_000, "bad_json"),
        ("1" * 5000, "bad_json"),
        ("[1, 2]", "bad_envelope"),
        ('"just a string"', "bad_envelope"),
        ("{}", "bad_envelope"),
        ('{"type": 5}', "bad_envelope"),
        ('{"type": ""}', "bad_envelope"),
        ('{"type": "test.echo", "v": "1"}', "bad_envelope"),
        ('{"type": "test.echo", "v": true}', "bad_envelope"),
        ('{"type": "test.echo", "data": [1]}', "bad_envelope"),
        ('{"type": "test.echo", "id": 7}', "bad_envelope"),
        ('{"type": "nope.nothing"}', "unknown_type"),
        ('{"type": "websocket.disconnect"}', "unknown_type"),
        ('{"type": "websocket_disconnect"}', "unknown_type"),
        ('{"type": "rt.nonsense"}', "unknown_type"),
        ('{"type": "test.note", "data": {"text": "server only"}}', "unknown_type"),
        ('{"type": "test.echo", "v": 9, "data": {"text": "x"}}', "unknown_type"),
        ('{"type": "test.echo", "data": {"text": [5]}}', "invalid"),
        ('{"type": "test.echo", "data": {}}', "invalid"),
        ('{"type": "test.echo", "data": {"text": "' + "x" * 500 + '"}}', "invalid"),
        ('{"type": "rt.subscribe", "data": {"group": "bad group!"}}', "bad_envelope"),
        (
            '{"type": "rt.subscribe", "data": {"group": "' + "a" * 120 + '"}}',
            "bad_envelope",
        ),
        (
            '{"type": "rt.subscribe", "data": {"group": "public.x", "since": -1}}',
            "bad_envelope",
        ),
        ('{"type": "rt.subscribe", "data": {"group": "nowhere.1"}}', "forbidden"),
        ('{"type": "rt.subscribe", "data": {"group": "room.1"}}', "forbidden"),
        ('{"type": "rt.auth", "data": {}}', "not_authenticated"),
    ],
)
async def test_bad_frames_get_documented_errors(raw, code):
    comm = await connect()
    # send_input: the communicator's send_to refuses an empty frame.
    await comm.send_input({"type": "websocket.receive", "text": raw})
    reply = await comm.receive_frame()
    assert reply["type"] == "rt.error"
    assert reply["data"]["code"] == code, reply
    if code != "not_authenticated":
        # The connection stays usable after a bad frame.
        assert (await comm.request("test.echo", {"text": "ok"}))["type"] == "rt.ack"
    await comm.disconnect()


async def test_binary_frame_is_refused():
    comm = await connect()
    await comm.send_to(bytes_data=b"\x00\x01")
    reply = await comm.receive_frame()
    assert reply["data"]["code"] == "bad_envelope"
    assert "binary" in reply["data"]["message"]
    await comm.disconnect()


async def test_validation_errors_carry_field_errors():
    comm = await connect()
    reply = await comm.request("test.echo", {"text": [5]})
    assert reply["data"]["code"] == "invalid"
    assert "text" in reply["data"]["errors"]
    await comm.disconnect()


async def test_handler_exception_is_server_error_without_traceback():
    comm = await connect()
    reply = await comm.request("test.boom")
    assert reply["type"] == "rt.error"
    assert reply["data"] == {
        "code": "server_error",
        "message": "Internal server error.",
    }
    assert "passwd" not in orjson.dumps(reply).decode()
    assert (await comm.request("test.echo", {"text": "still"}))["type"] == "rt.ack"
    await comm.disconnect()


async def test_frame_over_the_size_limit_closes_4413():
    comm = await connect()
    await comm.send_to(
        text_data='{"type":"test.echo","data":{"text":"' + "é" * 40_000 + '"}}'
    )
    reply = await comm.receive_frame()
    assert reply["data"]["code"] == "too_large"
    assert (await comm.receive_output())["code"] == status.WS_4413_FRAME_TOO_LARGE


@override_settings(REALTIME={"RATE": 1, "BURST": 3, "RATE_LIMIT_CLOSE_AFTER": 3})
async def test_flood_is_rate_limited_then_closed_4429():
    comm = await connect()
    for _ in range(3):
        await comm.send_frame({"type": "rt.ping"})
    for _ in range(3):
        assert (await comm.receive_frame())["type"] == "rt.pong"
    await comm.send_frame({"type": "rt.ping"})
    assert (await comm.receive_frame())["data"]["code"] == "rate_limited"
    await comm.send_frame({"type": "rt.ping"})
    assert (await comm.receive_frame())["data"]["code"] == "rate_limited"
    await comm.send_frame({"type": "rt.ping"})
    assert (await comm.receive_frame())["data"]["code"] == "rate_limited"
    assert (await comm.receive_output())["code"] == status.WS_4429_RATE_LIMITED


@override_settings(REALTIME={"MAX_INVALID_FRAMES": 3})
async def test_repeated_bad_frames_close_4400():
    comm = await connect()
    for _ in range(3):
        await comm.send_to(text_data="garbage")
        assert (await comm.receive_frame())["data"]["code"] == "bad_json"
    closing = await comm.receive_frame()
    assert closing["type"] == "rt.error"
    assert (await comm.receive_output())["code"] == status.WS_4400_PROTOCOL_ABUSE


@override_settings(REALTIME={"MAX_SUBSCRIPTIONS": 2})
async def test_subscription_count_is_limited():
    comm = await connect()
    assert (await comm.subscribe("public.a"))["type"] == "rt.ack"
    assert (await comm.subscribe("public.b"))["type"] == "rt.ack"
    reply = await comm.subscribe("public.c")
    assert reply["data"]["code"] == "forbidden"
    assert "at most 2" in reply["data"]["message"]
    await comm.disconnect()


async def test_client_ping_gets_pong_with_same_id():
    comm = await connect()
    await comm.send_frame({"type": "rt.ping", "id": "p1", "data": {"t": 5}})
    assert await comm.receive_frame() == {
        "type": "rt.pong",
        "id": "p1",
        "data": {"t": 5},
    }
    await comm.disconnect()


@override_settings(REALTIME={"HEARTBEAT_INTERVAL": 0.2, "HEARTBEAT_TIMEOUT": 0.6})
async def test_server_pings_and_closes_silent_connection_4408():
    comm = await connect()
    assert (await comm.receive_frame(timeout=2))["type"] == "rt.ping"
    frames = []
    while True:
        output = await comm.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            break
        frames.append(orjson.loads(output["text"]))
    assert frames[-1]["type"] == "rt.error"
    assert frames[-1]["data"]["code"] == "heartbeat_timeout"
    assert output["code"] == status.WS_4408_HEARTBEAT_TIMEOUT


@override_settings(REALTIME={"HEARTBEAT_INTERVAL": 0.2, "HEARTBEAT_TIMEOUT": 0.6})
async def test_answering_pings_keeps_connection_open():
    comm = await connect()
    nonces = set()
    for _ in range(8):  # 8 pings at 0.2 s: well past the 0.6 s timeout
        frame = await comm.receive_frame(timeout=2)
        assert frame["type"] == "rt.ping"
        # Each ping carries a fresh, unguessable nonce that the pong echoes.
        nonce = frame["data"]["nonce"]
        assert isinstance(nonce, str) and len(nonce) >= 16 and nonce not in nonces
        nonces.add(nonce)
        await comm.send_frame({"type": "rt.pong", "data": frame["data"]})
    assert (await comm.request("test.echo", {"text": "alive"}))["type"] == "rt.ack"
    await comm.disconnect()


async def test_subscribe_and_receive_group_event():
    comm = await connect()
    ack = await comm.subscribe("public.news")
    assert ack["type"] == "rt.ack"
    # A group without events still has an epoch: its seqs start at 1 in it.
    epoch = ack["data"]["epoch"]
    assert isinstance(epoch, str) and epoch
    assert ack["data"] == {
        "group": "public.news",
        "seq": 0,
        "epoch": epoch,
        "recovered": True,
    }
    seq = await realtime.anotify("public.news", "test.say", {"text": "hello"})
    assert seq == 1
    frame = await comm.receive_frame()
    assert frame["type"] == "test.say"
    assert frame["group"] == "public.news"
    assert frame["seq"] == 1
    assert frame["data"] == {"text": "hello"}
    await comm.disconnect()


async def test_unsubscribe_stops_delivery():
    comm = await connect()
    await comm.subscribe("public.a")
    await comm.subscribe("public.b")
    assert (await comm.request("rt.unsubscribe", {"group": "public.a"}))[
        "type"
    ] == "rt.ack"
    await realtime.anotify("public.a", "test.say", {"text": "not for you"})
    await realtime.anotify("public.b", "test.say", {"text": "for you"})
    frame = await comm.receive_frame()
    assert frame["data"]["text"] == "for you"
    assert await comm.receive_nothing(0.1)
    await comm.disconnect()


async def test_resubscribe_with_since_replays_missed_events_exactly_once():
    comm = await connect()
    ack = await comm.subscribe("public.r")
    epoch = None
    for n in range(1, 4):
        await realtime.anotify("public.r", "test.say", {"text": f"m{n}", "n": n})
    received = [await comm.receive_frame() for _ in range(3)]
    epoch = ack["data"]["epoch"] or (await realtime_position("public.r"))[1]
    await comm.disconnect()
    for n in range(4, 7):  # missed while away
        await realtime.anotify("public.r", "test.say", {"text": f"m{n}", "n": n})
    comm = await connect()
    ack = await comm.subscribe("public.r", since=received[-1]["seq"], epoch=epoch)
    assert ack["data"]["recovered"] is True
    assert ack["data"]["seq"] == 6
    await realtime.anotify("public.r", "test.say", {"text": "m7", "n": 7})
    frames = [await comm.receive_frame() for _ in range(4)]
    assert [f["seq"] for f in frames] == [4, 5, 6, 7]
    assert await comm.receive_nothing(0.1)
    await comm.disconnect()


async def realtime_position(group):
    from realtime.history import position

    return await position(group)


async def test_since_with_wrong_epoch_is_not_recovered():
    await realtime.anotify("public.e", "test.say", {"text": "x"})
    comm = await connect()
    ack = await comm.subscribe("public.e", since=1, epoch="other-epoch")
    assert ack["data"]["recovered"] is False
    assert await comm.receive_nothing(0.1)
    await comm.disconnect()


@override_settings(REALTIME={"HISTORY_SIZE": 3})
async def test_since_beyond_history_is_not_recovered():
    for n in range(10):
        await realtime.anotify("public.h", "test.say", {"text": str(n)})
    comm = await connect()
    ack = await comm.subscribe("public.h", since=2)
    assert ack["data"] == {
        "group": "public.h",
        "seq": 10,
        "epoch": ack["data"]["epoch"],
        "recovered": False,
    }
    await comm.disconnect()


async def test_a_handshake_while_shutting_down_is_sent_elsewhere_with_4503():
    from realtime.hub import get_hub
    from realtime.processes import shutdown

    held = RealtimeCommunicator(application, "/ws/")
    assert (await held.connect())[0]
    await shutdown(await get_hub())  # SIGTERM's first step, without the exit
    assert (await held.receive_frame())["data"]["code"] == "shutting_down"
    late = RealtimeCommunicator(application, "/ws/")
    connected, _ = await late.connect()
    assert connected  # accepted to carry the reason, then closed
    frame = await late.receive_frame()
    assert frame["type"] == "rt.error" and frame["data"]["code"] == "shutting_down"
    assert (await late.receive_output(3)) == {
        "type": "websocket.close",
        "code": status.WS_4503_SHUTTING_DOWN,
    }
