"""Three Redis shards, two daphne processes, both layers: each group's events,
history, presence and a ticket's claim on the server they belong to; delivery and
recovery across processes; a shard restarted empty starts its groups over."""

from __future__ import annotations

import httpx
import pytest
from django.core import signing

from realtime.auth import TICKET_SALT
from realtime.backends.shards import Ring
from tests.support.shards import CORE, PUBSUB, keys_on, redis_servers
from tests.support.wsclient import Client

pytestmark = [pytest.mark.e2e, pytest.mark.django_db, pytest.mark.timeout(120)]


def ticket(server, users, name: str) -> str:
    response = httpx.post(
        f"http://127.0.0.1:{server.port}/realtime/ticket/",
        headers={"Authorization": f"Token {users[name]['token']}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()["ticket"]


async def next_of(client: Client, type_: str, group: str) -> dict:
    while True:
        frame = await client.next_event(timeout=10)
        if frame["type"] == type_ and frame.get("group") == group:
            return frame


@pytest.mark.parametrize("layer", [CORE, PUBSUB], ids=["core", "pubsub"])
async def test_three_shards_two_processes(daphne, e2e_users, layer):
    with redis_servers(3) as shards:
        urls = [shard.url for shard in shards]
        prefix = "asgi__group__" if layer == PUBSUB else ""
        ring = Ring([{"address": url} for url in urls], group_prefix=prefix)
        groups = {}
        for n in range(100):
            groups.setdefault(ring.of_group(f"public.s3-{n}"), f"public.s3-{n}")
        assert sorted(groups) == [0, 1, 2]
        env = {"RT_LAYER_HOSTS": ",".join(urls)}
        one = daphne(redis_url=urls[0], layer=layer, env=env)
        two = daphne(redis_url=urls[0], layer=layer, env=env)

        issued = ticket(one, e2e_users, "alice")
        alice = await Client.open(f"{one.url}/ws/auth/?ticket={issued}")
        nonce = signing.loads(issued, salt=TICKET_SALT)["n"]
        claims = [keys_on(shard, "rt:claim:*") for shard in shards]
        assert [f"rt:claim:ticket:{nonce}" in found for found in claims] == [
            index == ring.of_key(f"ticket:{nonce}") for index in range(3)
        ]
        epochs = {}
        for group in groups.values():
            ack = await alice.request("rt.subscribe", {"group": group})
            assert ack["type"] == "rt.ack", ack
            epochs[group] = ack["data"]["epoch"]

        sender = await Client.open(f"{two.url}/ws/")
        for index, group in groups.items():
            reply = await sender.request("test.say", {"group": group, "text": group})
            assert reply["type"] == "rt.ack", reply
            event = await next_of(alice, "test.say", group)
            assert (event["seq"], event["data"]["text"]) == (1, group)
            # The group's history and presence are on its shard and nowhere else.
            mine = {f"rt:log:{{{group}}}", f"rt:meta:{{{group}}}", f"rt:pc:{{{group}}}"}
            for other, shard in enumerate(shards):
                held = keys_on(shard) & mine
                assert held == (mine if other == index else set()), (group, other)
            members = await alice.request("rt.presence", {"group": group})
            assert [m.get("username") for m in members["data"]["members"]] == [
                "alice"
            ], members

        # Recovery on the other process, from each group's shard.
        late = await Client.open(f"{two.url}/ws/")
        for group in groups.values():
            ack = await late.request(
                "rt.subscribe", {"group": group, "since": 0, "epoch": epochs[group]}
            )
            assert ack["data"]["recovered"] is True, ack
            replayed = await next_of(late, "test.say", group)
            assert (replayed["seq"], replayed["data"]["text"]) == (1, group)

        # Shard 2 restarts empty: its group starts over, the others go on.
        shards[2].stop()
        shards[2].start()
        for index, group in groups.items():
            reply = await sender.request("test.say", {"group": group, "text": "again"})
            assert reply["type"] == "rt.ack", reply
            assert reply["data"]["seq"] == (1 if index == 2 else 2), (index, reply)
        reset = await next_of(alice, "rt.reset", groups[2])
        assert reset["data"]["epoch"] != epochs[groups[2]]
        for client in (alice, sender, late):
            await client.close()
