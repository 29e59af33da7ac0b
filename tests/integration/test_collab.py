"""Shared documents through the consumer: permissions, limits, validation, relay,
persistence (in-process server, in-memory layer)."""

import base64

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

from realtime.collab import store
from realtime.collab.documents import documents
from realtime.testing import RealtimeCommunicator
from tests.support.collab import Peer, application, b64, sync

pytestmark = pytest.mark.django_db(transaction=True)
APP = application()


@pytest.fixture(autouse=True)
def fresh_documents():
    documents.clear()
    yield
    documents.clear()


async def user(django_user_model, name):
    return await database_sync_to_async(django_user_model.objects.create_user)(name)


async def connect(u, group="doc.notes"):
    comm = RealtimeCommunicator(APP, "/ws/docs/", user=u)
    assert (await comm.connect())[0]
    ack = await comm.subscribe(group)
    assert ack["type"] == "rt.ack", ack
    return comm


async def no_doc_frames(comm, wait=0.2):
    """True when no doc.* frame is queued or arrives within ``wait`` seconds
    (presence frames may)."""
    seen = list(comm.events)
    comm.events.clear()
    while not await comm.receive_nothing(wait):
        seen.append(await comm.receive_frame())
    comm.events.extend(seen)
    return not any(f["type"].startswith("doc.") for f in seen)


async def relayed(comm, peer, timeout=3):
    frame = await comm.receive_event("doc.sync", group=peer.group, timeout=timeout)
    peer.receive(frame)


async def test_two_clients_converge_and_the_database_agrees(django_user_model):
    alice, bob = (
        await user(django_user_model, "alice"),
        await user(django_user_model, "bob"),
    )
    a, b = await connect(alice), await connect(bob)
    pa, pb = Peer("doc.notes"), Peer("doc.notes")
    await sync(a, pa)
    await sync(b, pb)
    assert pa.writable and pb.writable
    assert (await a.request("doc.sync", pa.edit(lambda t: t.insert(0, "hello"))))[
        "type"
    ] == "rt.ack"
    await relayed(b, pb)
    ack = await b.request("doc.sync", pb.edit(lambda t: t.insert(5, " world")))
    assert ack["type"] == "rt.ack"
    await relayed(a, pa)
    assert str(pa) == str(pb) == "hello world"
    assert await store.atext("doc.notes") == "hello world"
    assert await no_doc_frames(a)  # no echo of its own updates
    await a.disconnect()
    await b.disconnect()


async def test_a_late_joiner_gets_the_document_in_its_sync_ack(django_user_model):
    alice = await user(django_user_model, "alice")
    a = await connect(alice)
    pa = Peer("doc.notes")
    await sync(a, pa)
    await a.request("doc.sync", pa.edit(lambda t: t.insert(0, "typed before")))
    late = await connect(await user(django_user_model, "carol"))
    pc = Peer("doc.notes")
    await sync(late, pc)
    assert str(pc) == "typed before"
    await a.disconnect()
    await late.disconnect()


async def test_offline_edits_on_both_sides_merge_on_reconnect(django_user_model):
    alice, bob = (
        await user(django_user_model, "alice"),
        await user(django_user_model, "bob"),
    )
    a = await connect(alice)
    pa, pb = Peer("doc.notes"), Peer("doc.notes")
    await sync(a, pa)
    await a.request("doc.sync", pa.edit(lambda t: t.insert(0, "shared line")))
    b = await connect(bob)
    await sync(b, pb)
    await b.disconnect()  # bob goes offline and keeps typing in the same paragraph
    pb.edit(lambda t: t.insert(6, " offline"))
    await a.request("doc.sync", pa.edit(lambda t: t.insert(11, " online")))
    b = await connect(bob)
    await sync(b, pb)  # his step 2 carries what he typed offline
    await relayed(a, pa)
    assert str(pa) == str(pb) == await store.atext("doc.notes")
    assert "offline" in str(pa) and "online" in str(pa)
    await a.disconnect()
    await b.disconnect()


async def test_documents_survive_a_restart_of_the_process(django_user_model):
    alice = await user(django_user_model, "alice")
    a = await connect(alice)
    pa = Peer("doc.notes")
    await sync(a, pa)
    await a.request("doc.sync", pa.edit(lambda t: t.insert(0, "kept")))
    await a.disconnect()
    documents.clear()  # what a restart leaves: nothing in memory
    b = await connect(await user(django_user_model, "bob"))
    pb = Peer("doc.notes")
    await sync(b, pb)
    assert str(pb) == "kept"
    await b.disconnect()


async def test_read_only_users_read_but_their_updates_are_refused(django_user_model):
    alice, reader = (
        await user(django_user_model, "alice"),
        await user(django_user_model, "reader1"),
    )
    a, r = await connect(alice), await connect(reader)
    pa, pr = Peer("doc.notes"), Peer("doc.notes")
    await sync(a, pa)
    await a.request("doc.sync", pa.edit(lambda t: t.insert(0, "by alice")))
    await sync(r, pr)
    assert pr.writable is False and str(pr) == "by alice"
    refused = await r.request("doc.sync", pr.edit(lambda t: t.insert(0, "X")))
    assert refused["type"] == "rt.error"
    assert refused["data"]["code"] == "forbidden"
    assert "read-only" in refused["data"]["message"]
    assert await no_doc_frames(a)  # nothing relayed
    assert await store.atext("doc.notes") == "by alice"
    await a.disconnect()
    await r.disconnect()


async def test_syncing_needs_a_subscription_and_a_document_group(django_user_model):
    alice = await user(django_user_model, "alice")
    comm = RealtimeCommunicator(APP, "/ws/docs/", user=alice)
    assert (await comm.connect())[0]
    peer = Peer("doc.notes")
    refused = await comm.request("doc.sync", peer.step1())
    assert refused["data"]["code"] == "forbidden"
    assert (await comm.subscribe("room.1"))["type"] == "rt.ack"
    refused = await comm.request("doc.sync", Peer("room.1").step1())
    assert refused["data"]["code"] == "forbidden"
    assert "not a shared document" in refused["data"]["message"]
    await comm.disconnect()


async def test_anonymous_users_cannot_subscribe_to_documents():
    comm = RealtimeCommunicator(APP, "/ws/docs/")
    assert (await comm.connect())[0]
    refused = await comm.subscribe("doc.notes")
    assert refused["data"]["code"] == "forbidden"
    await comm.disconnect()


@pytest.mark.parametrize(
    "m",
    [
        "not base64!",
        b64(b"\x02\x05abc"),  # truncated sync message
        b64(b"\x02\x07garbage"),  # a sync message whose update does not decode
        b64(b"\x00\x03\xff\xff\xff"),  # a step 1 whose state vector does not decode
    ],
)
async def test_malformed_messages_are_invalid_and_change_nothing(django_user_model, m):
    alice = await user(django_user_model, "alice")
    a, b = await connect(alice), await connect(await user(django_user_model, "bob"))
    pa = Peer("doc.notes")
    await sync(a, pa)
    await a.request("doc.sync", pa.edit(lambda t: t.insert(0, "intact")))
    await b.receive_event("doc.sync", timeout=3)
    refused = await a.request("doc.sync", {"group": "doc.notes", "m": m})
    assert refused["type"] == "rt.error"
    assert refused["data"]["code"] == "invalid"
    assert await no_doc_frames(b)
    assert await store.atext("doc.notes") == "intact"
    pc = Peer("doc.notes")
    await sync(a, pc)
    assert str(pc) == "intact"
    await a.disconnect()
    await b.disconnect()


async def test_updates_over_the_size_limit_are_refused(django_user_model):
    alice = await user(django_user_model, "alice")
    with override_settings(
        REALTIME={"COLLAB_MAX_UPDATE_BYTES": 100, "MAX_FRAME_BYTES": 64 * 1024}
    ):
        a = await connect(alice)
        pa = Peer("doc.notes")
        await sync(a, pa)
        refused = await a.request("doc.sync", pa.edit(lambda t: t.insert(0, "x" * 500)))
        assert refused["type"] == "rt.error"
        assert refused["data"]["code"] == "too_large"
        ok = await a.request(
            "doc.sync", Peer("doc.notes").edit(lambda t: t.insert(0, "y"))
        )
        assert ok["type"] == "rt.ack"  # the connection stays open and usable
        assert await store.atext("doc.notes") == "y"
        await a.disconnect()


async def test_document_messages_are_rate_limited(django_user_model):
    alice = await user(django_user_model, "alice")
    with override_settings(REALTIME={"COLLAB_RATE": 0.001, "COLLAB_BURST": 3}):
        a = await connect(alice)
        pa = Peer("doc.notes")
        await sync(a, pa)  # two messages of the burst
        codes = []
        for i in range(3):
            reply = await a.request(
                "doc.sync", pa.edit(lambda t, i=i: t.insert(0, str(i)))
            )
            codes.append(reply["data"]["code"] if reply["type"] == "rt.error" else "ok")
        assert codes == ["ok", "rate_limited", "rate_limited"]
        await a.disconnect()


async def test_awareness_is_relayed_stamped_with_the_user_and_cleared_on_leave(
    django_user_model,
):
    from realtime.collab.ysync import decode_awareness, encode_awareness

    alice, bob = (
        await user(django_user_model, "alice"),
        await user(django_user_model, "bob"),
    )
    a, b = await connect(alice), await connect(bob)
    state = {"cursor": {"anchor": 3}, "user": {"name": "mallory", "color": "#30bced"}}
    await a.send_frame(
        {
            "type": "doc.awareness",
            "data": {
                "group": "doc.notes",
                "m": b64(encode_awareness([(42, 1, state)])),
            },
        }
    )
    frame = await b.receive_event("doc.awareness", group="doc.notes")
    [(client, clock, shown)] = decode_awareness(base64.b64decode(frame["data"]["m"]))
    assert (client, clock) == (42, 1)
    assert shown["user"] == {"name": "alice", "id": alice.pk, "color": "#30bced"}
    assert shown["cursor"] == {"anchor": 3}
    await a.disconnect()
    frame = await b.receive_event("doc.awareness", group="doc.notes")
    assert decode_awareness(base64.b64decode(frame["data"]["m"])) == [(42, 2, None)]
    bad = await b.request(
        "doc.awareness", {"group": "doc.notes", "m": b64(b"\x01\x01\x01\x03{a}")}
    )
    assert bad["data"]["code"] == "invalid"
    await b.disconnect()


async def test_a_full_document_refuses_updates_and_stays_readable(django_user_model):
    alice = await user(django_user_model, "alice")
    with override_settings(REALTIME={"COLLAB_MAX_DOCUMENT_BYTES": 300}):
        a = await connect(alice)
        pa = Peer("doc.notes")
        await sync(a, pa)
        assert (await a.request("doc.sync", pa.edit(lambda t: t.insert(0, "x" * 100))))[
            "type"
        ] == "rt.ack"
        refused = await a.request("doc.sync", pa.edit(lambda t: t.insert(0, "y" * 300)))
        assert refused["data"]["code"] == "too_large"
        late = Peer("doc.notes")
        await sync(a, late)  # same connection, still open
        assert str(late) == "x" * 100
        await a.disconnect()
