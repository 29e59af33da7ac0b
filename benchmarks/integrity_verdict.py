"""The verdict of benchmarks/integrity.py: every event once and in order, or told.

Pure functions over what the publisher logged (each ``notify()`` call, with its
per-group counter ``n`` and whether it returned) and what each client recorded
(every frame it received, its connects and closes). No servers here, so the logic
is unit-tested on synthetic recordings (tests/unit/test_integrity.py).

For each client and each group it subscribed to (a *stream*, kept across
reconnects), every accepted event published after the stream's first subscribe ack
must be delivered once, in order (by ``n``), or be covered by a *signal*: an
``rt.reset`` for the group, or a subscribe ack with ``recovered: false``. A missing
event is covered only when

- a signal lies in the stream between the delivery of its neighbours (the greatest
  delivered ``n`` below it and the smallest above it), and
- the event's ``notify()`` started before the last such signal was received (a
  signal cannot announce a loss that had not happened yet), and
- when the signal carries a seq and the next delivered event carries a seq above
  it, the event is not one of the seqs in between: the signal says events go on
  after its seq, so those must arrive.

A close is not a signal by itself: the client resubscribes with ``since`` and
``epoch`` and the ack's ``recovered`` decides (``true`` must leave no hole). A stream
whose last connection closed without a new ack is *incomplete*: the close covers
what is missing before it, nothing after it is required, and the run is not valid.

Figures are counted per phase by the time the event's ``notify()`` started.
Consecutive silent losses in a stream (no delivery between them) form a *hole*; holes
are also counted, with their events, in the phase they began in, since a loss that
goes on into later phases (a seq that went back, a group membership never restored)
was caused there.

Known blind spot: a ``notify()`` that raised may still have taken a seq (the reply
was lost, not the event). If such an event is lost right after a signal, the seq
rule above blames one accepted event too many.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import NamedTuple


class Published(NamedTuple):
    """One ``notify()`` call of the publisher."""

    group: str
    n: int  # the per-group counter in the event's data
    t0: float  # monotonic time the call started
    t1: float  # ... and returned or raised
    ok: bool  # returned without raising: the event was accepted
    error: str | None = None


class Rec(NamedTuple):
    """One thing a client saw, in the order it saw it.

    kinds: ``open`` (connected; ``code`` holds the URL), ``sub`` (subscribe sent),
    ``ack`` (subscribe ack), ``event``, ``reset`` (``rt.reset``), ``error``
    (``rt.error``; ``group`` set when it answered a subscribe), ``close`` (the
    server or the network closed; ``code`` is the close code), ``end`` (the checker
    closed the client at the end of the run).
    """

    t: float
    kind: str
    group: str | None = None
    seq: int | None = None
    n: int | None = None
    epoch: str | None = None
    recovered: bool | None = None
    code: int | str | None = None


def ack(
    t: float, group: str, seq: int | None, epoch: str | None, recovered: bool
) -> Rec:
    return Rec(t, "ack", group, seq, epoch=epoch, recovered=recovered)


def event(t: float, group: str, seq: int | None, n: int) -> Rec:
    return Rec(t, "event", group, seq, n)


def reset(t: float, group: str, seq: int | None, epoch: str | None = None) -> Rec:
    return Rec(t, "reset", group, seq, epoch=epoch)


def close(t: float, code: int = 1006) -> Rec:
    return Rec(t, "close", code=code)


@dataclass
class Phase:
    """A stretch of the run. Events are counted in the phase their notify() started
    in (from ``t_begin`` to the next phase's ``t_begin``); ``t_ref`` is the fault's
    moment from which the time to recover is measured."""

    name: str
    t_begin: float
    t_ref: float | None = None
    groups: Sequence[str] | None = None  # the groups the fault hits (None: all)


class Issue(NamedTuple):
    kind: str  # silent, duplicate, out-of-order
    client: str
    group: str
    n: int  # the first event concerned
    count: int  # events in this hole (1 for duplicates and out-of-order)
    detail: str


@dataclass
class StreamVerdict:
    """What one client's stream of one group shows."""

    subscribed: bool = True
    incomplete: bool = False
    required: list[int] = field(default_factory=list)
    delivered: list[int] = field(default_factory=list)  # required and delivered
    silent: list[tuple[int, str]] = field(default_factory=list)
    # Silent losses in runs with no delivery between them: (first n, events, why).
    holes: list[tuple[int, int, str]] = field(default_factory=list)
    told: list[tuple[int, str, float]] = field(default_factory=list)  # + delay
    duplicates: list[int] = field(default_factory=list)
    out_of_order: list[int] = field(default_factory=list)
    unaccepted: list[int] = field(default_factory=list)  # delivered, notify() raised
    signals: list[tuple[float, str]] = field(default_factory=list)
    reconnects: list[float] = field(default_factory=list)


class _Signal(NamedTuple):
    pos: int
    t: float
    seq: int | None
    kind: str


def verify_stream(
    items: Sequence[Rec], published: dict[int, Published]
) -> StreamVerdict:
    """Judge one stream: ``items`` are one client's records of one group (and its
    connection records), ``published`` the group's notify() calls by ``n``."""
    verdict = StreamVerdict()
    acks = [r for r in items if r.kind == "ack"]
    if not acks:
        verdict.subscribed = False
        return verdict
    started = acks[0].t
    seen: set[int] = set()
    highest: int | None = None
    deliveries: list[tuple[int, int, int | None]] = []  # (n, pos, seq), stream order
    signals: list[_Signal] = []
    opens = 0
    closed_at: tuple[int, float] | None = None
    for pos, rec in enumerate(items):
        if rec.kind == "event":
            n = rec.n
            assert n is not None
            if n in seen:
                verdict.duplicates.append(n)
                continue
            seen.add(n)
            if highest is not None and n < highest:
                verdict.out_of_order.append(n)
            else:
                highest = n
            deliveries.append((n, pos, rec.seq))
            if n not in published or not published[n].ok:
                verdict.unaccepted.append(n)
        elif rec.kind == "reset":
            signals.append(_Signal(pos, rec.t, rec.seq, "rt.reset"))
            verdict.signals.append((rec.t, "rt.reset"))
        elif rec.kind == "ack":
            closed_at = None
            if rec.recovered is False:
                signals.append(_Signal(pos, rec.t, rec.seq, "recovered:false"))
                verdict.signals.append((rec.t, "recovered:false"))
        elif rec.kind == "close":
            closed_at = (pos, rec.t)
        elif rec.kind == "open":
            opens += 1
            if opens > 1:
                verdict.reconnects.append(rec.t)
    until = float("inf")
    if closed_at is not None:
        # Never resubscribed: the close covers what is missing before it.
        verdict.incomplete = True
        until = closed_at[1]
        signals.append(_Signal(closed_at[0], until, None, "close"))

    by_n = sorted(deliveries)
    delivered_ns = [n for n, _pos, _seq in by_n]
    accepted = sorted(n for n, p in published.items() if p.ok)
    for n in accepted:
        call = published[n]
        if call.t0 < started or call.t0 >= until:
            continue  # before this stream subscribed, or after it was gone
        verdict.required.append(n)
        if n in seen:
            verdict.delivered.append(n)
            continue
        signal, reason = _covered(n, call, by_n, delivered_ns, signals, accepted, seen)
        if signal is not None:
            verdict.told.append((n, reason, signal.t - call.t0))
        else:
            verdict.silent.append((n, reason))
    last = None
    for n, reason in verdict.silent:
        # One hole: nothing delivered between the previous silent loss and this one.
        if last is not None and bisect.bisect_left(
            delivered_ns, n
        ) == bisect.bisect_left(delivered_ns, last):
            first, count, why = verdict.holes[-1]
            verdict.holes[-1] = (first, count + 1, why)
        else:
            verdict.holes.append((n, 1, reason))
        last = n
    return verdict


def _covered(
    n: int,
    call: Published,
    by_n: list[tuple[int, int, int | None]],
    delivered_ns: list[int],
    signals: list[_Signal],
    accepted: list[int],
    seen: set[int],
) -> tuple[_Signal | None, str]:
    """The signal that covers the missing event ``n`` (None: a silent loss), and
    why."""
    index = bisect.bisect_left(delivered_ns, n)
    before = by_n[index - 1] if index > 0 else None
    after = by_n[index] if index < len(by_n) else None
    lo = before[1] if before else -1
    hi = after[1] if after else 1 << 62
    if lo > hi:  # only with out-of-order deliveries, reported on their own
        lo, hi = hi, lo
    between = [s for s in signals if lo < s.pos < hi]
    neighbours = (
        f"between n={before[0] if before else None} and n={after[0] if after else None}"
    )
    if not between:
        return None, f"no signal {neighbours}"
    last = between[-1]
    if call.t0 > last.t:
        return (
            None,
            f"published {call.t0 - last.t:.3f}s after the {last.kind} {neighbours}",
        )
    if (
        last.seq is not None
        and after is not None
        and after[2] is not None
        and after[2] > last.seq + 1
    ):
        # The signal said events go on after its seq: the ones up to the next
        # delivered event's seq were due after it.
        due = after[2] - last.seq - 1
        low = before[0] if before else -1
        missing = [m for m in accepted if low < m < after[0] and m not in seen]
        if n in missing[-due:]:
            return (
                None,
                f"seq {last.seq + 1}..{after[2] - 1} due after the {last.kind} "
                f"(seq {last.seq}) {neighbours}",
            )
    return last, f"covered by {last.kind} at {last.t:.3f}"


@dataclass
class Tally:
    """Figures of one phase (or of the whole run)."""

    published: int = 0  # accepted notify() calls
    failed: int = 0  # notify() raised
    required: int = 0  # (stream, event) pairs due
    delivered: int = 0
    silent: int = 0
    holes: int = 0  # runs of silent losses that began in this phase
    hole_events: int = 0  # ... and their events, wherever they were published
    told: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    resets: int = 0
    recovered_false: int = 0
    reconnects: int = 0
    unaccepted_delivered: int = 0
    told_delay_max: float = 0.0  # seconds from a told event's notify() to its signal
    recover_max: float | None = None
    recover_p50: float | None = None
    never_recovered: int = 0

    def add(self, other: Tally) -> None:
        for f in fields(self):
            if not f.name.startswith(("recover_", "told_delay")):
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        self.told_delay_max = max(self.told_delay_max, other.told_delay_max)


@dataclass
class Report:
    phases: dict[str, Tally]
    total: Tally
    issues: list[Issue]
    streams: int
    incomplete: list[tuple[str, str]]  # (client, group) whose last close had no ack
    unsubscribed: list[tuple[str, str]]  # (client, group) never acked
    errors: dict[str, int]  # notify() exceptions by type

    @property
    def failed(self) -> bool:
        t = self.total
        return bool(
            t.silent
            or t.duplicates
            or t.out_of_order
            or self.incomplete
            or self.unsubscribed
        )


def _phase_of(phases: Sequence[Phase], t: float) -> str:
    starts = [p.t_begin for p in phases]
    index = bisect.bisect_right(starts, t) - 1
    return phases[max(index, 0)].name


def stream_items(records: Iterable[Rec], group: str) -> list[Rec]:
    """One group's records out of a client's, with its connection records."""
    return [r for r in records if r.group == group or r.group is None]


def verify(
    published: Iterable[Published],
    recordings: dict[str, list[Rec]],
    groups: dict[str, list[str]],
    phases: Sequence[Phase],
) -> Report:
    """Judge a run: ``recordings`` by client name, ``groups`` the groups each client
    subscribed to, ``phases`` in time order (at least one)."""
    calls: dict[str, dict[int, Published]] = {}
    for call in published:
        calls.setdefault(call.group, {})[call.n] = call
    tallies = {p.name: Tally() for p in phases}
    errors: dict[str, int] = {}
    for group_calls in calls.values():
        for call in group_calls.values():
            tally = tallies[_phase_of(phases, call.t0)]
            if call.ok:
                tally.published += 1
            else:
                tally.failed += 1
                errors[call.error or "?"] = errors.get(call.error or "?", 0) + 1
    issues: list[Issue] = []
    incomplete, unsubscribed = [], []
    recovery: dict[str, list[float | None]] = {p.name: [] for p in phases}
    streams = 0
    for client, records in recordings.items():
        for group in groups[client]:
            streams += 1
            items = stream_items(records, group)
            group_calls = calls.get(group, {})
            verdict = verify_stream(items, group_calls)
            if not verdict.subscribed:
                unsubscribed.append((client, group))
                continue
            if verdict.incomplete:
                incomplete.append((client, group))
            _count(verdict, client, group, group_calls, phases, tallies, issues)
            _recovery(items, group, group_calls, phases, recovery)
    for phase in phases:
        times = recovery[phase.name]
        done = sorted(t for t in times if t is not None)
        tally = tallies[phase.name]
        tally.never_recovered = len(times) - len(done)
        if done:
            tally.recover_max = done[-1]
            tally.recover_p50 = statistics.median(done)
    total = Tally()
    for tally in tallies.values():
        total.add(tally)
    return Report(
        phases=tallies,
        total=total,
        issues=issues,
        streams=streams,
        incomplete=incomplete,
        unsubscribed=unsubscribed,
        errors=errors,
    )


def _count(
    verdict: StreamVerdict,
    client: str,
    group: str,
    calls: dict[int, Published],
    phases: Sequence[Phase],
    tallies: dict[str, Tally],
    issues: list[Issue],
) -> None:
    def phase(n: int) -> Tally:
        call = calls.get(n)
        return tallies[_phase_of(phases, call.t0 if call else float("-inf"))]

    for n in verdict.required:
        phase(n).required += 1
    for n in verdict.delivered:
        phase(n).delivered += 1
    for n, _reason in verdict.silent:
        phase(n).silent += 1
    for n, count, reason in verdict.holes:
        tally = phase(n)
        tally.holes += 1
        tally.hole_events += count
        issues.append(Issue("silent", client, group, n, count, reason))
    for n, _reason, delay in verdict.told:
        tally = phase(n)
        tally.told += 1
        tally.told_delay_max = max(tally.told_delay_max, delay)
    for n in verdict.duplicates:
        phase(n).duplicates += 1
        issues.append(Issue("duplicate", client, group, n, 1, "delivered again"))
    for n in verdict.out_of_order:
        phase(n).out_of_order += 1
        issues.append(Issue("out-of-order", client, group, n, 1, "after a higher n"))
    for n in verdict.unaccepted:
        phase(n).unaccepted_delivered += 1
    for t, kind in verdict.signals:
        tally = tallies[_phase_of(phases, t)]
        if kind == "rt.reset":
            tally.resets += 1
        else:
            tally.recovered_false += 1
    for t in verdict.reconnects:
        tallies[_phase_of(phases, t)].reconnects += 1


def _recovery(
    items: Sequence[Rec],
    group: str,
    calls: dict[int, Published],
    phases: Sequence[Phase],
    recovery: dict[str, list[float | None]],
) -> None:
    """Per fault: seconds from its moment until this stream received an event
    published after it (None: it never did)."""
    acks = [r.t for r in items if r.kind == "ack"]
    for index, phase in enumerate(phases):
        if phase.t_ref is None or (phase.groups and group not in phase.groups):
            continue
        ends = phases[index + 1].t_begin if index + 1 < len(phases) else float("inf")
        if not acks or acks[0] >= ends:
            continue  # the stream did not exist during this phase
        found = None
        for rec in items:
            if rec.kind != "event" or rec.t < phase.t_ref:
                continue
            call = calls.get(rec.n) if rec.n is not None else None
            if call is not None and call.t0 >= phase.t_ref:
                found = rec.t - phase.t_ref
                break
        recovery[phase.name].append(found)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


COLUMNS = [
    ("phase", 14),
    ("published", 9),
    ("failed", 6),
    ("due", 7),
    ("delivered", 9),
    ("silent", 6),
    ("holes begun/events", 18),
    ("told", 6),
    ("late s", 6),
    ("dup", 5),
    ("ooo", 5),
    ("resets", 6),
    ("rec:false", 9),
    ("reconn", 6),
    ("recover max/p50 s", 17),
    ("never", 5),
]


def _row(name: str, t: Tally) -> str:
    values = [
        name,
        t.published,
        t.failed,
        t.required,
        t.delivered,
        t.silent,
        f"{t.holes}/{t.hole_events}",
        t.told,
        f"{t.told_delay_max:.1f}" if t.told else "-",
        t.duplicates,
        t.out_of_order,
        t.resets,
        t.recovered_false,
        t.reconnects,
        f"{_seconds(t.recover_max)}/{_seconds(t.recover_p50)}",
        t.never_recovered,
    ]
    return " ".join(
        str(v).ljust(w) if i == 0 else str(v).rjust(w)
        for i, (v, (_, w)) in enumerate(zip(values, COLUMNS, strict=True))
    )


def format_report(title: str, report: Report, *, samples: int = 12) -> str:
    """The table and the totals the checker prints for one layer."""
    header = " ".join(
        name.ljust(w) if i == 0 else name.rjust(w)
        for i, (name, w) in enumerate(COLUMNS)
    )
    lines = [title, header]
    lines += [_row(name, tally) for name, tally in report.phases.items()]
    lines.append(_row("total", report.total))
    t = report.total
    lines += [
        f"streams (client x group): {report.streams}",
        f"silent losses: {t.silent}",
        f"duplicates: {t.duplicates}",
        f"out-of-order: {t.out_of_order}",
        f"told (covered by rt.reset / recovered:false): {t.told}, the latest "
        f"{t.told_delay_max:.2f}s after its notify()",
        f"recoveries forced: {t.resets} rt.reset, {t.recovered_false} recovered:false",
        f"delivered although notify() raised: {t.unaccepted_delivered}",
    ]
    if report.errors:
        lines.append(f"notify() raised: {report.errors}")
    if report.incomplete:
        lines.append(
            f"INCOMPLETE: {len(report.incomplete)} streams closed and never "
            f"resubscribed, e.g. {report.incomplete[:3]}"
        )
    if report.unsubscribed:
        lines.append(
            f"NEVER SUBSCRIBED: {len(report.unsubscribed)} streams, e.g. "
            f"{report.unsubscribed[:3]}"
        )
    for issue in _samples(report.issues, samples):
        what = (
            f"n={issue.n}" if issue.count == 1 else f"n={issue.n} (+{issue.count - 1})"
        )
        lines.append(
            f"  {issue.kind}: {issue.client} {issue.group} {what}: {issue.detail}"
        )
    return "\n".join(lines)


def _samples(issues: list[Issue], count: int) -> list[Issue]:
    """A few issues of each kind and group, so one flood does not hide the rest."""
    picked: list[Issue] = []
    per_key: dict[tuple[str, str], int] = {}
    for issue in issues:
        key = (issue.kind, issue.group)
        if per_key.get(key, 0) < 2:
            per_key[key] = per_key.get(key, 0) + 1
            picked.append(issue)
    return picked[:count]
