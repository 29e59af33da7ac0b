"""The loss checker's verdict (benchmarks/integrity_verdict.py) on synthetic
recordings; tests/e2e/test_integrity.py runs the checker itself, CI-sized.

In the synthetic recordings, event ``n`` is published (notify() called) at time
``n`` and received at ``n + 0.5``.
"""

from __future__ import annotations

import pytest

from benchmarks.integrity_verdict import (
    Phase,
    Published,
    Rec,
    ack,
    close,
    event,
    format_report,
    reset,
    verify,
    verify_stream,
)

G = "public.h-0"


def calls(ns, *, failed=()) -> dict[int, Published]:
    return {n: Published(G, n, n, n + 0.01, n not in failed) for n in ns}


def live(*ns: int, seq_offset: int | None = 0) -> list[Rec]:
    """Events ``ns`` received live (seq = n + seq_offset; None: no history)."""
    return [
        event(n + 0.5, G, None if seq_offset is None else n + seq_offset, n) for n in ns
    ]


def subscribed(t: float = 0.5, **kw) -> list[Rec]:
    return [
        Rec(t - 0.1, "open", code="ws://x/ws/"),
        ack(t, G, kw.get("seq", 0), "e1", kw.get("recovered", True)),
    ]


def silent(verdict) -> list[int]:
    return [n for n, _why in verdict.silent]


def told(verdict) -> list[int]:
    return [n for n, _why, _delay in verdict.told]


def test_clean_stream_passes():
    verdict = verify_stream([*subscribed(), *live(1, 2, 3, 4, 5)], calls(range(1, 6)))
    assert verdict.required == verdict.delivered == [1, 2, 3, 4, 5]
    assert (verdict.silent, verdict.told, verdict.duplicates) == ([], [], [])
    assert verdict.out_of_order == [] and not verdict.incomplete


def test_a_hole_with_no_signal_is_a_silent_loss():
    verdict = verify_stream([*subscribed(), *live(1, 2, 4, 5)], calls(range(1, 6)))
    assert silent(verdict) == [3]
    assert "between n=2 and n=4" in verdict.silent[0][1]
    assert verdict.holes == [(3, 1, verdict.silent[0][1])]


def test_a_hole_at_the_end_is_a_silent_loss():
    verdict = verify_stream([*subscribed(), *live(1, 2)], calls(range(1, 5)))
    assert silent(verdict) == [3, 4]
    assert [(n, count) for n, count, _ in verdict.holes] == [(3, 2)]


def test_duplicate_and_out_of_order_are_reported():
    duplicated = verify_stream([*subscribed(), *live(1, 2, 2, 3)], calls(range(1, 4)))
    assert duplicated.duplicates == [2] and duplicated.silent == []
    shuffled = verify_stream([*subscribed(), *live(1, 3, 2, 4)], calls(range(1, 5)))
    assert shuffled.out_of_order == [2] and shuffled.silent == []


def test_a_reset_between_the_neighbours_covers_the_hole():
    records = [*subscribed(), *live(1, 2), reset(4.7, G, None), *live(5)]
    verdict = verify_stream(records, calls(range(1, 6)))
    assert (silent(verdict), told(verdict)) == ([], [3, 4])
    assert verdict.signals == [(4.7, "rt.reset")]
    assert [round(delay, 1) for _n, _why, delay in verdict.told] == [1.7, 0.7]


def test_a_reset_covers_only_what_was_published_before_it():
    # Event 4's notify() started at t=4, after the reset arrived at t=3.2.
    records = [*subscribed(), *live(1, 2), reset(3.2, G, None), *live(5)]
    verdict = verify_stream(records, calls(range(1, 6)))
    assert told(verdict) == [3]
    assert silent(verdict) == [4]
    assert "after the rt.reset" in verdict.silent[0][1]


def test_events_after_a_resets_seq_are_due():
    # The reset says events go on after seq 2, then seq 5 arrives: 3 and 4 are
    # not covered, although they were published before the reset arrived.
    records = [*subscribed(), *live(1, 2), reset(4.7, G, 2, "e2"), *live(5)]
    verdict = verify_stream(records, calls(range(1, 6)))
    assert silent(verdict) == [3, 4] and told(verdict) == []
    # With the reset's seq right before the next event's, both are covered.
    records = [*subscribed(), *live(1, 2), reset(4.7, G, 4, "e2"), *live(5)]
    assert told(verify_stream(records, calls(range(1, 6)))) == [3, 4]


def test_a_signal_after_the_next_event_covers_nothing():
    records = [*subscribed(), *live(1, 3), reset(3.7, G, None)]
    verdict = verify_stream(records, calls(range(1, 4)))
    assert silent(verdict) == [2]


def test_a_resubscribe_acked_recovered_false_covers_the_gap():
    records = [
        *subscribed(),
        *live(1, 2),
        close(2.6),
        Rec(4.6, "open", code="ws://y/ws/"),
        ack(4.7, G, 4, "e1", False),
        *live(5),
    ]
    verdict = verify_stream(records, calls(range(1, 6)))
    assert (silent(verdict), told(verdict)) == ([], [3, 4])
    assert verdict.signals == [(4.7, "recovered:false")]
    assert len(verdict.reconnects) == 1


def test_a_reconnect_acked_recovered_true_must_leave_no_hole():
    # Closed after 3 and 4 were published (and not delivered).
    reconnect = [close(4.6), Rec(4.65, "open"), ack(4.7, G, 4, "e1", True)]
    # The replay brings 3 but not 4: a silent loss, the close is no excuse.
    records = [*subscribed(), *live(1, 2), *reconnect, event(4.8, G, 3, 3), *live(5)]
    verdict = verify_stream(records, calls(range(1, 6)))
    assert silent(verdict) == [4]
    assert verdict.delivered == [1, 2, 3, 5]
    # No replay at all: the close lies between 2 and 5, and is no signal.
    records = [*subscribed(), *live(1, 2), *reconnect, *live(5)]
    assert silent(verify_stream(records, calls(range(1, 6)))) == [3, 4]
    # The whole replay: clean, replayed events count as delivered.
    records = [*subscribed(), *live(1, 2), *reconnect, *live(3, 4), *live(5)]
    verdict = verify_stream(records, calls(range(1, 6)))
    assert verdict.silent == [] and verdict.delivered == [1, 2, 3, 4, 5]
    # A replay that repeats what was already delivered: duplicates.
    records = [*subscribed(), *live(1, 2), *reconnect, *live(2, 3, 4), *live(5)]
    assert verify_stream(records, calls(range(1, 6))).duplicates == [2]


def test_only_events_after_the_first_ack_are_due():
    records = [Rec(2.4, "sub", G), *subscribed(t=2.5), *live(3, 4)]
    verdict = verify_stream(records, calls(range(1, 5)))
    assert verdict.required == [3, 4] and verdict.silent == []


def test_notify_calls_that_raised_are_not_due():
    published = calls(range(1, 5), failed={2, 3})
    verdict = verify_stream([*subscribed(), *live(1, 3, 4)], published)
    assert verdict.required == [1, 4] and verdict.silent == []
    assert verdict.unaccepted == [3]


def test_a_stream_that_closed_for_good_is_incomplete():
    records = [*subscribed(), *live(1, 2), close(3.2)]
    verdict = verify_stream(records, calls(range(1, 6)))
    assert verdict.incomplete
    assert verdict.required == [1, 2, 3]  # nothing after the close is due
    assert told(verdict) == [3]


def test_groups_without_history_are_judged_by_n_alone():
    records = [*subscribed(), *live(1, 2, 4, seq_offset=None)]
    assert silent(verify_stream(records, calls(range(1, 5)))) == [3]


def test_report_counts_holes_in_the_phase_they_began():
    published = list(calls(range(1, 11)).values())
    records = {"c0": [*subscribed(), *live(1, 2, 3, 9, 10)], "c1": []}
    phases = [Phase("steady", 0), Phase("kill", 5.5, t_ref=5.5)]
    report = verify(published, records, {"c0": [G], "c1": [G]}, phases)
    steady, kill = report.phases["steady"], report.phases["kill"]
    # 4..8 is one hole that began in "steady" and went on into "kill".
    assert (steady.silent, kill.silent) == (2, 3)
    assert (steady.holes, steady.hole_events, kill.holes) == (1, 5, 0)
    assert (steady.published, kill.published) == (5, 5)
    assert (steady.required, steady.delivered) == (5, 3)
    assert report.total.silent == 5
    assert report.unsubscribed == [("c1", G)]
    assert report.failed
    # Recovery after the kill: event 9 (published at 9) arrived at 9.5.
    assert kill.recover_max == pytest.approx(4.0)
    text = format_report("core", report)
    assert "silent losses: 5" in text
    assert "c0 public.h-0 n=4 (+4): no signal between n=3 and n=9" in text


def test_report_passes_a_clean_run():
    published = list(calls(range(1, 4)).values())
    records = {"c0": [*subscribed(), *live(1, 2, 3), Rec(4, "end")]}
    report = verify(published, records, {"c0": [G]}, [Phase("steady", 0)])
    assert not report.failed
    assert "silent losses: 0" in format_report("core", report)
