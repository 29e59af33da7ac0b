"""The loss checker (benchmarks/integrity.py), CI-sized: both layers, real daphne
processes and a real redis-server, under faults. tests/unit/test_integrity.py checks
its verdict on synthetic recordings."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.integrity import Options, run, totals


@pytest.mark.e2e
async def test_no_silent_loss_under_faults(e2e_db, tmp_path):
    """Both layers, burst / idle past HISTORY_TTL / Redis restarted empty / a daphne
    SIGKILLed: every accepted event arrives once, or the socket is told."""
    options = Options(
        phases=["burst", "idle", "redis-restart", "kill"],
        clients=6,
        history_ttl=3,
        rate=60.0,
        settle=1.0,
        drain=5.0,
    )
    results = await asyncio.wait_for(run(options, e2e_db, tmp_path), 150)
    summary = "\n\n".join(r.summary() for r in results) + "\n" + totals(results)
    print(summary)
    for result in results:
        report = result.report
        # The run measured something: every phase published and delivered.
        for name, tally in report.phases.items():
            assert tally.published > 0 and tally.delivered > 0, (name, summary)
        assert report.total.reconnects >= 1, summary  # the kill was felt
        assert not report.incomplete and not report.unsubscribed, summary
    silent = sum(r.report.total.silent for r in results)
    duplicates = sum(r.report.total.duplicates for r in results)
    out_of_order = sum(r.report.total.out_of_order for r in results)
    assert (silent, duplicates, out_of_order) == (0, 0, 0), summary
