"""Soak, CI size: 40 clients over 2 daphne processes, ~20 s of steady publishing.

The 2-minute version is ``benchmarks/soak.py``; both share ``soak()``.
"""

from __future__ import annotations

import pytest

from benchmarks.soak import soak, wait_clean

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]


async def test_soak_two_processes_nothing_lost(daphne, redis_url):
    servers = [daphne(redis_url=redis_url, RATE=1000.0, BURST=1000) for _ in range(2)]
    figures = await soak(
        [s.url for s in servers],
        [s.proc.pid for s in servers],
        seconds=20,
        clients=40,
        rate=25,
    )
    print(figures)
    assert figures["lost"] == 0 and figures["duplicated"] == 0, figures
    assert figures["events_published"] >= 300
    for _first, middle, last in figures["rss_kib"].values():
        # Flat: after warm-up (the middle sample) it grows by less than 5 MB.
        assert last - middle < 5_000, figures["rss_kib"]
    assert await wait_clean(redis_url) == []
    assert all(s.proc.poll() is None for s in servers)
