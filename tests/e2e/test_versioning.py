"""Event versions end to end: an old client (test.greet v1) and a new one (v2) in one
group, on two daphne processes sharing Redis (tests/integration/test_versioning.py:
the same through the communicator)."""

from __future__ import annotations

import pytest

from tests.support.wsclient import Client

pytestmark = pytest.mark.django_db(transaction=True)

GROUP = "public.lobby"


@pytest.mark.e2e
async def test_old_and_new_client_on_two_processes(daphne, redis_url):
    one, two = daphne(redis_url=redis_url), daphne(redis_url=redis_url)
    old = await Client.open(f"{one.url}/ws/versioned/")
    new = await Client.open(f"{two.url}/ws/versioned/")
    try:
        for client, version in ((old, 1), (new, 2)):
            hello = await client.request(
                "rt.hello", {"events": {"test.greet": version}}
            )
            assert hello["data"]["events"] == {"test.greet": version}
            assert (await client.request("rt.subscribe", {"group": GROUP}))[
                "type"
            ] == "rt.ack"

        reply = await old.request(
            "test.greet", {"room": "lobby", "text": "from v1"}, v=1
        )
        assert reply["data"]["v"] == 2, reply
        got = await new.next_event()
        assert (got["v"], got["data"]) == (
            2,
            {"room": "lobby", "body": "from v1", "lang": "en"},
        )
        got = await old.next_event()
        assert (got["v"], got["data"]) == (1, {"room": "lobby", "text": "from v1"})

        reply = await new.request(
            "test.greet", {"room": "lobby", "body": "de v2", "lang": "fr"}, v=2
        )
        assert reply["type"] == "rt.ack", reply
        got = await old.next_event()
        assert (got["v"], got["data"]) == (1, {"room": "lobby", "text": "de v2"})
        got = await new.next_event()
        assert (got["v"], got["data"]["lang"]) == (2, "fr")
    finally:
        await old.close()
        await new.close()
