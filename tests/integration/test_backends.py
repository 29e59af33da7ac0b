"""The backend contract, written once and run on the memory and the Redis backend."""

import asyncio

import pytest
from django.test import override_settings

from realtime.backends.memory import MemoryBackend
from realtime.backends.redis import RedisBackend


@pytest.fixture(params=["memory", "redis"])
async def backend(request):
    if request.param == "memory":
        yield MemoryBackend()
        return
    url = request.getfixturevalue("redis_url")
    instance = RedisBackend(url)
    yield instance
    await instance.close()


async def append(backend, group, n):
    return await backend.append(group, '{"seq":', f',"n":{n}}}')


async def test_seq_grows_by_one_and_frames_embed_it(backend):
    seqs = [(await append(backend, "g.a", n))[0] for n in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    read = await backend.since("g.a", 2, None)
    assert read.recovered is True
    assert read.frames == [
        (3, '{"seq":3,"n":2}'),
        (4, '{"seq":4,"n":3}'),
        (5, '{"seq":5,"n":4}'),
    ]
    assert (read.seq, read.epoch) == (5, (await backend.position("g.a"))[1])


async def test_concurrent_appends_never_share_a_seq(backend):
    results = await asyncio.gather(*(append(backend, "g.c", n) for n in range(200)))
    assert sorted(seq for seq, _ in results) == list(range(1, 201))
    assert len({epoch for _, epoch in results}) == 1


async def test_groups_are_independent(backend):
    await append(backend, "g.one", 0)
    await append(backend, "g.one", 1)
    assert (await append(backend, "g.two", 0))[0] == 1
    assert (await backend.position("g.one"))[0] == 2
    # positions() only looks; position() gives a group its first epoch.
    assert await backend.positions(["g.none", "g.one"]) == [
        (0, None),
        await backend.position("g.one"),
    ]
    seq, epoch = await backend.position("g.none")
    assert seq == 0 and epoch
    assert await backend.position("g.none") == (0, epoch)
    assert (await append(backend, "g.none", 0)) == (1, epoch)


@override_settings(REALTIME={"HISTORY_SIZE": 3})
async def test_log_is_bounded_and_recovery_says_so(backend):
    for n in range(10):
        await append(backend, "g.b", n)
    assert (await backend.since("g.b", 7, None)).recovered is True
    assert [s for s, _ in (await backend.since("g.b", 7, None)).frames] == [8, 9, 10]
    lost = await backend.since("g.b", 5, None)
    assert lost.recovered is False
    assert lost.frames == []
    assert lost.seq == 10


async def test_wrong_epoch_or_future_seq_is_not_recovered(backend):
    _, epoch = await append(backend, "g.e", 0)
    assert (await backend.since("g.e", 0, epoch)).recovered is True
    assert (await backend.since("g.e", 0, "other")).recovered is False
    assert (await backend.since("g.e", 5, epoch)).recovered is False
    assert (await backend.since("g.new", 3, None)).recovered is False
    assert (await backend.since("g.new", 0, None)).recovered is True


async def test_claim_is_single_use(backend):
    assert await backend.claim("ticket-1", 5) is True
    assert await backend.claim("ticket-1", 5) is False
    assert await backend.claim("ticket-2", 5) is True


async def test_presence_counts_users_once(backend):
    alice = {"id": 1, "username": "alice"}
    assert await backend.presence_join("room.1", "c1", "1", alice, 30) is True
    assert await backend.presence_join("room.1", "c2", "1", alice, 30) is False
    assert await backend.presence_join("room.1", "c3", "", None, 30) is False
    state = await backend.presence_state("room.1")
    assert state.members == [alice]
    assert (state.anonymous, state.connections) == (1, 3)
    assert await backend.presence_leave("room.1", "c1") is None
    assert await backend.presence_leave("room.1", "c2") == alice
    assert await backend.presence_leave("room.1", "c3") is None
    assert (await backend.presence_state("room.1")).connections == 0


async def test_expired_presence_is_swept_once(backend):
    bob = {"id": 2, "username": "bob"}
    await backend.presence_join("room.9", "dead", "2", bob, 0.2)
    await backend.presence_join("room.9", "live", "", None, 30)
    await backend.presence_refresh([("room.9", "live")], 30)
    await asyncio.sleep(0.3)  # the point: let the dead connection's lease run out
    assert await backend.presence_sweep() == [("room.9", bob)]
    assert await backend.presence_sweep() == []
    state = await backend.presence_state("room.9")
    assert (state.members, state.connections) == ([], 1)


async def test_refresh_keeps_entries_alive(backend):
    carol = {"id": 3, "username": "carol"}
    await backend.presence_join("room.5", "c", "3", carol, 0.3)
    for _ in range(3):
        await asyncio.sleep(0.15)
        await backend.presence_refresh([("room.5", "c")], 0.3)
    assert await backend.presence_sweep() == []
    assert (await backend.presence_state("room.5")).members == [carol]
