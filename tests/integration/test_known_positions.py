"""A burst of subscribes to one group reads its position once (history.KnownPositions).

The first subscribe reads the position from the backend; later ones, while the hub
stays joined to the group, get it from the process, moved on by every event the hub
dispatches. Whatever a subscriber is told, it must then get every later event once
and in order, and anything that could make the known position wrong (a gap, an
outage, leaving the group, age) makes the next subscribe read again.
"""

from __future__ import annotations

import pytest

from realtime import backends
from realtime.frames import EventFrame
from realtime.history import KnownPositions
from realtime.hub import get_hub
from realtime.live import Event
from realtime.testing import RealtimeCommunicator
from tests.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

GROUP = "public.known"


@pytest.fixture
def reads(monkeypatch):
    """The backend's position reads, counted."""
    backend = backends.get_backend()
    counted = {"position": 0}
    position = backend.position

    async def counting(group):
        counted["position"] += 1
        return await position(group)

    monkeypatch.setattr(backend, "position", counting)
    return counted


async def connect() -> RealtimeCommunicator:
    comm = RealtimeCommunicator(application, "/ws/")
    connected, _ = await comm.connect()
    assert connected
    return comm


async def subscribed(comms: list) -> dict:
    comm = await connect()
    comms.append(comm)
    ack = await comm.subscribe(GROUP)
    assert ack["type"] == "rt.ack", ack
    return ack["data"]


async def published(n: int, *, live: bool = True) -> int:
    """Append event ``n`` to history; the hub gets it only if ``live``."""
    frame = EventFrame(GROUP, "test.note", {"text": f"e{n}"}, 1)
    seq, epoch = await backends.get_backend().append(GROUP, frame.prefix, frame.suffix)
    if live:
        await (await get_hub()).dispatch(Event(frame.message(seq, epoch)))
    return seq


async def seqs_until(comm: RealtimeCommunicator, last: int) -> list[int]:
    """The seqs of GROUP's events this socket gets until ``last``."""
    seen: list[int] = []
    while not seen or seen[-1] < last:
        frame = await comm.receive_event("test.note", group=GROUP, timeout=3)
        seen.append(frame["seq"])
    return seen


@pytest.fixture
async def comms():
    """The sockets a test opened, closed at its end."""
    opened: list[RealtimeCommunicator] = []
    yield opened
    for comm in opened:
        await comm.disconnect()


async def each_gets_what_follows_its_ack(acks: list, comms: list, last: int) -> None:
    for ack, comm in zip(acks, comms, strict=True):
        assert await seqs_until(comm, last) == list(range(ack["seq"] + 1, last + 1))


async def test_subscribes_in_separate_turns_read_the_position_once(reads, comms):
    for n in range(3):
        await published(n, live=False)
    acks = [await subscribed(comms) for _ in range(12)]
    assert reads["position"] == 1
    assert {(ack["seq"], ack["epoch"]) for ack in acks} == {(3, acks[0]["epoch"])}
    last = await published(3)
    for comm in comms:
        assert await seqs_until(comm, last) == [4]


async def test_events_move_the_known_position_and_every_later_event_arrives(
    reads, comms
):
    acks = []
    for n in range(6):
        acks.append(await subscribed(comms))
        await published(n)
    assert reads["position"] == 1
    # Each subscriber was told the position it joined at: the events before.
    assert [ack["seq"] for ack in acks[1:]] == [1, 2, 3, 4, 5]
    last = await published(6)
    await each_gets_what_follows_its_ack(acks, comms, last)


async def test_a_gap_makes_the_next_subscribe_read_again(reads, comms):
    await subscribed(comms)
    await published(0, live=False)  # lost on the way to this process
    gap = await published(1)
    assert reads["position"] == 1
    ack = await subscribed(comms)
    assert reads["position"] == 2
    assert ack["seq"] == gap
    last = await published(2)
    assert await seqs_until(comms[0], last) == [1, 2, 3]
    assert await seqs_until(comms[1], last) == [3]


async def test_lost_events_among_subscribes_are_each_filled_once_in_order(reads, comms):
    acks = []
    for n in range(12):
        acks.append(await subscribed(comms))
        await published(n, live=n % 3 != 1)
    last = await published(12)
    await each_gets_what_follows_its_ack(acks, comms, last)
    # The first subscribe reads; a gap (found at the next live event) makes
    # the next subscribe read again: three gaps have a subscribe after them.
    assert reads["position"] == 4


async def test_an_outage_forgets_every_known_position(reads, comms):
    await subscribed(comms)
    (await get_hub()).mark_lost(None)
    await subscribed(comms)
    assert reads["position"] == 2


async def test_a_group_left_and_joined_again_reads_again(reads, comms):
    await subscribed(comms)
    assert (await comms[0].request("rt.unsubscribe", {"group": GROUP}))[
        "type"
    ] == "rt.ack"
    await published(0, live=False)  # while no socket here was joined
    ack = await subscribed(comms)
    assert reads["position"] == 2
    assert ack["seq"] == 1


async def test_a_known_position_is_read_again_after_its_lifetime(
    reads, comms, monkeypatch
):
    monkeypatch.setattr(KnownPositions, "LIFETIME", 0.0)
    for _ in range(3):
        await subscribed(comms)
    assert reads["position"] == 3


def test_only_the_next_seq_of_the_same_epoch_moves_a_known_position():
    known = KnownPositions()
    members = object()
    known.learned("g", 5, "e1", members)
    known.advance("g", 6, "e1")
    known.advance("g", 4, "e1")  # counted already: no news
    assert known.get("g", members) == (6, "e1")
    assert known.get("g", object()) is None  # another membership
    known.learned("g", 6, "e1", members)
    known.advance("g", 8, "e1")
    assert known.get("g", members) is None
    known.learned("g", 6, "e1", members)
    known.advance("g", 1, "e2")
    assert known.get("g", members) is None
    known.learned("g", 0, None, members)  # no history yet
    assert known.get("g", members) is None
