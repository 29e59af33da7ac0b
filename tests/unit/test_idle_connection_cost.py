"""An idle connection's own objects stay small: what every open socket pays for.

Measured with tracemalloc around building the per-connection objects, so a change
that gives each socket another deque, dict or task shows up here before it shows up
as kilobytes per connection in benchmarks/connections.py.
"""

from __future__ import annotations

import gc
import tracemalloc

from realtime.outbound import MAX_PINGS, Outbox
from tests.unit.test_outbox import Socket, outbox_for

N = 500


def _bytes_each(build) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [build() for _ in range(N)]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(kept) == N
    return (after - before) / N


async def test_an_idle_outbox_costs_a_few_hundred_bytes():
    socket = Socket()
    # Before, three empty deques (760 B each) came with every outbox.
    each = _bytes_each(lambda: Outbox(socket.send, close=socket.close))
    assert each < 400, f"{each:.0f} B per idle Outbox"


async def test_an_outbox_that_wrote_and_pinged_stays_small():
    socket = Socket()

    async def discard(message: dict) -> None:
        pass  # what was written is not this test's memory

    def used() -> Outbox:
        outbox = Outbox(discard, close=socket.close)
        outbox.write('{"type":"x"}')
        outbox.ping()
        return outbox

    each = _bytes_each(used)
    # The ping's nonce and record are the only additions; no queue without a
    # flow-controlled send.
    assert each < 600, f"{each:.0f} B per used Outbox"


async def test_only_the_latest_unanswered_pings_are_remembered():
    socket = Socket()
    outbox = outbox_for(socket)
    for _ in range(MAX_PINGS + 1):
        outbox.write("x" * 10)
        outbox.ping()
    nonces = [f["data"]["nonce"] for f in socket.frames() if f["type"] == "rt.ping"]
    assert len(nonces) == MAX_PINGS + 1
    # The oldest ping was forgotten: its pong acknowledges nothing.
    outbox.pong({"nonce": nonces[0]})
    assert outbox.acked_bytes == 0
    # The next one still acknowledges every byte written before it.
    outbox.pong({"nonce": nonces[1]})
    texts = socket.texts
    second = next(i for i, text in enumerate(texts) if nonces[1] in text)
    assert outbox.acked_bytes == sum(len(text) for text in texts[:second])
