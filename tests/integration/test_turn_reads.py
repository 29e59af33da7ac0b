"""Subscribes of one loop turn share one history read (realtime.history.TurnReads).

Each subscriber must get exactly what its own read would have returned: the same
seq, epoch, recovered flag and frames, whatever mix of ``since``, epochs and bare
positions share the read, on the memory backend and on Redis.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime import backends
from realtime.backends.base import HistoryRead
from realtime.history import POSITION, TurnReads

GROUP = "public.turns"

# (since, epoch): epoch None, the group's own ("same") or another ("stale").
asks = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 14), st.just(POSITION)),
        st.sampled_from([None, "same", "stale"]),
    ),
    min_size=1,
    max_size=8,
)


async def fill(events: int) -> str | None:
    backend = backends.get_backend()
    epoch = None
    for n in range(events):
        _, epoch = await backend.append(GROUP, '{"n":', f',"i":{n}}}')
    return epoch


def resolve(epoch: str | None, current: str | None) -> str | None:
    return {"same": current, "stale": "0" * 12}.get(epoch) if epoch else None


async def alone(since: int, epoch: str | None) -> HistoryRead:
    return await backends.get_backend().since(GROUP, since, epoch)


async def shared(reads: TurnReads, since: int, epoch: str | None) -> HistoryRead:
    if since == POSITION:
        seq, current = await reads.position(GROUP)
        return HistoryRead(seq=seq, epoch=current, recovered=False)
    return await reads.since(GROUP, since, epoch)


async def compare(asked: list[tuple[int, str | None]], current: str | None) -> int:
    """Check every shared answer against a read of its own; return the backend
    reads the shared answers took."""
    backend = backends.get_backend()
    calls = 0
    since, position = backend.since, backend.position

    async def counted_since(*args):
        nonlocal calls
        calls += 1
        return await since(*args)

    async def counted_position(*args):
        nonlocal calls
        calls += 1
        return await position(*args)

    asked = [(s, resolve(e, current)) for s, e in asked]
    backend.since, backend.position = counted_since, counted_position
    try:
        reads = TurnReads()
        answers = await asyncio.gather(*(shared(reads, s, e) for s, e in asked))
    finally:
        del backend.since, backend.position
    for (s, e), answer in zip(asked, answers, strict=True):
        own = await alone(s, e)
        if s == POSITION:
            assert (answer.seq, answer.epoch) == (own.seq, own.epoch)
        else:
            assert answer == own, (s, e)
    return calls


@pytest.fixture
def small_history(settings):
    settings.REALTIME = {**getattr(settings, "REALTIME", {}), "HISTORY_SIZE": 5}
    backends.reset()
    yield
    backends.reset()


@pytest.mark.usefixtures("small_history")
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(events=st.integers(0, 12), asked=asks)
async def test_shared_answers_are_each_subscribers_own_on_the_memory_backend(
    events, asked
):
    backends.reset()
    current = await fill(events)
    await compare(asked, current)


@pytest.mark.usefixtures("small_history", "redis_layer")
async def test_shared_answers_are_each_subscribers_own_on_redis():
    # Trimmed history (5 kept of 12), every kind of ask in one turn.
    current = await fill(12)
    asked = [(0, None), (6, "same"), (7, None), (9, "stale"), (12, "same")]
    asked += [(13, None), (POSITION, None), (3, "same"), (8, "same")]
    for n in range(len(asked)):
        await compare(asked[n:] + asked[:n], current)
    # A group without a position yet, asked by positions and since 0 together.
    await compare([(POSITION, None), (0, None), (0, "stale"), (2, None)], None)


async def test_one_read_serves_a_turn_of_subscribes_and_the_next_turn_reads_again():
    backends.reset()
    await fill(3)
    asked = [(1, None), (2, None), (3, None), (POSITION, None)] * 25
    assert await compare(asked, None) == 1
    # Asked in two turns: two reads, the second after the first was sent.
    reads = TurnReads()
    first = asyncio.ensure_future(reads.since(GROUP, 1, None))
    for _ in range(3):  # the ask, the read's task, the read: each a loop turn
        await asyncio.sleep(0)
    assert first.done()
    await fill(1)
    second = await reads.since(GROUP, 1, None)
    assert [seq for seq, _ in (await first).frames] == [2, 3]
    assert [seq for seq, _ in second.frames] == [2, 3, 4]


async def test_a_subscriber_that_goes_away_leaves_the_others_their_answer():
    backends.reset()
    await fill(2)
    reads = TurnReads()
    gone = asyncio.ensure_future(reads.since(GROUP, 0, None))
    kept = asyncio.ensure_future(reads.since(GROUP, 1, None))
    await asyncio.sleep(0)
    gone.cancel()
    assert [seq for seq, _ in (await kept).frames] == [2]
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_a_failed_read_fails_every_subscriber_of_its_turn(monkeypatch):
    backends.reset()
    backend = backends.get_backend()

    async def down(*args):
        raise ConnectionError("history unreachable")

    monkeypatch.setattr(backend, "since", down)
    reads = TurnReads()
    results = await asyncio.gather(
        reads.since(GROUP, 0, None), reads.since(GROUP, 3, None), return_exceptions=True
    )
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
