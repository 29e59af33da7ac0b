"""Event versions: upgrade what old clients send, downgrade what they receive.

An old client (declares test.greet v1 with rt.hello) and a new one (v2) talk in one
group, through the communicator (tests/e2e/test_versioning.py: over real daphne
processes and Redis).
"""

from __future__ import annotations

import logging

import pytest

from realtime.schema import NoDowngrade, registry
from realtime.testing import RealtimeCommunicator
from tests.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

GROUP = "public.lobby"


async def connect(events: dict | None = None) -> RealtimeCommunicator:
    comm = RealtimeCommunicator(application, "/ws/versioned/")
    assert (await comm.connect())[0]
    if events is not None:
        hello = await comm.request("rt.hello", {"events": events})
        assert hello["type"] == "rt.ack", hello
    ack = await comm.subscribe(GROUP)
    assert ack["type"] == "rt.ack", ack
    return comm


async def next_event(comm: RealtimeCommunicator) -> dict:
    """The next group event, whether it came before or after the last reply."""
    while True:
        frame = comm.events.pop(0) if comm.events else await comm.receive_frame()
        if frame["type"] != "rt.ping":
            return frame


@pytest.fixture
async def pair():
    old = await connect({"test.greet": 1, "test.poll": 1})
    new = await connect({"test.greet": 2, "test.poll": 2})
    yield old, new
    await old.disconnect()
    await new.disconnect()


# -- the registry's converters ---------------------------------------------------------


def test_upgrade_and_downgrade_walk_the_registered_versions():
    v1 = {"room": "a", "text": "hi"}
    v2 = registry.upgrade("test.greet", v1, 1, 2)
    assert v2 == {"room": "a", "body": "hi", "lang": "en"}
    assert registry.downgrade("test.greet", v2, 2, 1) == v1
    assert registry.downgrade_for("test.greet", v2, 2, 7) == (2, v2)
    assert registry.downgrade_for("test.greet", v2, 2, 1) == (1, v1)
    with pytest.raises(NoDowngrade, match="no downgrader from v2"):
        registry.downgrade_for("test.poll", {}, 2, 1)


def test_negotiate_picks_the_newest_version_the_client_understands():
    assert registry.negotiate("test.greet", 1) == 1
    assert registry.negotiate("test.greet", 2) == 2
    assert registry.negotiate("test.greet", 9) == 2
    assert registry.negotiate("test.poll", 1) is None  # no downgrader from v2
    assert registry.negotiate("test.poll", 3) == 2


def test_downgrader_output_is_validated_against_the_old_version():
    with registry.temporary():
        registry.downgraders[("test.greet", 2)] = lambda data: {"room": data["room"]}
        with pytest.raises(NoDowngrade, match="produced invalid data"):
            registry.downgrade_for("test.greet", {"room": "a", "body": "b"}, 2, 1)


# -- over the communicator ---------------------------------------------------------------


async def test_hello_ack_says_what_the_server_will_send():
    comm = RealtimeCommunicator(application, "/ws/versioned/")
    assert (await comm.connect())[0]
    reply = await comm.request(
        "rt.hello", {"events": {"test.greet": 1, "nobody.knows": 3}}
    )
    assert reply["data"] == {"protocol": 1, "events": {"test.greet": 1}}
    reply = await comm.request("rt.hello", {"events": {"test.greet": 5}})
    assert reply["data"]["events"] == {"test.greet": 2}
    await comm.disconnect()


async def test_old_client_v1_is_upgraded_and_each_client_gets_its_version(pair):
    old, new = pair
    reply = await old.request("test.greet", {"room": "lobby", "text": "hi"}, v=1)
    # The handler saw v2, upgraded from what the old client sent.
    assert reply["type"] == "rt.ack", reply
    assert reply["data"]["v"] == 2
    assert reply["data"]["data"] == {"room": "lobby", "body": "hi", "lang": "en"}
    for_new = await next_event(new)
    assert (for_new["type"], for_new["v"], for_new["group"]) == ("test.greet", 2, GROUP)
    assert for_new["data"] == {"room": "lobby", "body": "hi", "lang": "en"}
    for_old = await next_event(old)
    assert (for_old["v"], for_old["data"]) == (1, {"room": "lobby", "text": "hi"})
    assert for_old["seq"] == for_new["seq"]

    reply = await new.request(
        "test.greet", {"room": "lobby", "body": "salut", "lang": "fr"}, v=2
    )
    assert reply["data"]["v"] == 2
    assert (await next_event(old))["data"] == {"room": "lobby", "text": "salut"}
    assert (await next_event(new))["data"]["lang"] == "fr"


async def test_frame_without_v_is_the_latest_version(pair):
    old, new = pair
    reply = await new.request(
        "test.greet", {"room": "lobby", "body": "x", "lang": "en"}
    )
    assert reply["type"] == "rt.ack"
    assert (await next_event(old))["data"] == {"room": "lobby", "text": "x"}


async def test_client_without_downgrade_path_is_skipped_with_a_log_line(pair, caplog):
    old, new = pair
    with caplog.at_level(logging.WARNING, "realtime.hub"):
        reply = await new.request(
            "test.poll",
            {"room": "lobby", "question": "tea?", "options": ["yes", "no"]},
            v=2,
        )
        assert reply["type"] == "rt.ack"
        assert (await next_event(new))["type"] == "test.poll"
        # The next greeting is the old client's next event: the poll was skipped.
        await new.request("test.greet", {"room": "lobby", "body": "hi", "lang": "en"})
        skipped_then = await next_event(old)
    assert (skipped_then["type"], skipped_then["v"]) == ("test.greet", 1)
    assert "not sent to a v1 client of test.poll" in caplog.text


async def test_old_client_may_still_send_what_it_cannot_receive(pair):
    old, new = pair
    reply = await old.request("test.poll", {"room": "lobby", "question": "q"}, v=1)
    assert reply["data"]["data"]["options"] == ["yes", "no"]
    assert (await next_event(new))["data"]["options"] == ["yes", "no"]


async def test_unknown_version_names_the_supported_ones(pair):
    old, _ = pair
    reply = await old.request("test.greet", {"room": "lobby", "text": "hi"}, v=3)
    assert reply["data"]["code"] == "unknown_type"
    assert "expected version in [1, 2], got 3" in reply["data"]["message"]


async def test_invalid_old_payload_never_reaches_the_group(pair):
    old, new = pair
    reply = await old.request("test.greet", {"room": "lobby", "body": "v2 shape"}, v=1)
    assert reply["data"]["code"] == "invalid"
    assert reply["data"]["errors"] == {"text": ["This field is required."]}
    await old.request("test.greet", {"room": "lobby", "text": "valid"}, v=1)
    assert (await next_event(new))["data"]["body"] == "valid"


async def test_replayed_events_are_downgraded_for_old_clients(pair):
    old, new = pair
    ack = await old.subscribe(GROUP)
    since = ack["data"]["seq"]
    await new.request("test.greet", {"room": "lobby", "body": "missed", "lang": "en"})
    await next_event(new)
    await next_event(old)
    old.events.clear()
    ack = await old.subscribe(GROUP, since=since, epoch=ack["data"]["epoch"])
    assert ack["data"]["recovered"] is True
    replayed = await next_event(old)
    assert (replayed["v"], replayed["data"]) == (1, {"room": "lobby", "text": "missed"})


async def test_hello_ack_leaves_out_events_the_client_cannot_receive():
    comm = RealtimeCommunicator(application, "/ws/versioned/")
    assert (await comm.connect())[0]
    reply = await comm.request("rt.hello", {"events": {"test.poll": 1}})
    assert "test.poll" not in reply["data"]["events"]
    await comm.disconnect()


# -- end to end: two daphne processes, one Redis -----------------------------------------
