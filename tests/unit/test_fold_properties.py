"""Property: the state on every date depends on the set of events, not on the
order in which reporters happened to record them."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dateline.domain.city import City
from dateline.domain.control import EventType, Source, TimelineEntry, fold
from dateline.domain.errors import DomainError

ACTORS = ("Afghan government", "Taliban", "National Resistance Front")
START = date(2015, 1, 1)
RECORDED = datetime(2022, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Fact:
    kind: EventType
    on: date
    actor: str


def city() -> City:
    return City.register(
        slug="c", name="C", province="P", country="X", lat=0.0, lon=0.0, population=None,
        initial_controller=ACTORS[0], tracked_since=START, recorded_at=RECORDED,
    )  # fmt: skip


def record(target: City, fact: Fact) -> None:
    target.report(
        fact.kind, occurred_on=fact.on, actor=fact.actor, source=Source("s"),
        reported_by="r", recorded_at=RECORDED,
    )  # fmt: skip


@st.composite
def valid_histories(draw: st.DrawFn) -> list[Fact]:
    """A world-order sequence that obeys the rules, on distinct days."""
    probe = city()
    facts: list[Fact] = []
    day = START
    for _ in range(draw(st.integers(1, 8))):
        day += timedelta(days=draw(st.integers(1, 400)))
        kind = draw(st.sampled_from(list(EventType)))
        actor = draw(st.sampled_from(ACTORS))
        fact = Fact(kind, day, actor)
        try:
            record(probe, fact)
        except DomainError:
            continue
        facts.append(fact)
    return facts


def record_in_order(order: list[Fact]) -> City | None:
    """Record as reporters would: a refused report waits for the facts it needs."""
    target, pending = city(), list(order)
    while pending:
        still_pending = []
        for fact in pending:
            try:
                record(target, fact)
            except DomainError:
                still_pending.append(fact)
        if len(still_pending) == len(pending):
            return None  # this order cannot be recorded without a retraction
        pending = still_pending
    return target


def observable(c: City, on: date) -> tuple[object, ...]:
    state = c.status_on(on)
    cause = c.control_events.get(state.event_id or "", [None, None, "Registered", None])
    return (state.status, state.controller, state.contested_by, state.since, cause[0], cause[2])


def probe_days(facts: list[Fact]) -> list[date]:
    days = {START - timedelta(days=1), START}
    for fact in facts:
        days |= {fact.on - timedelta(days=1), fact.on, fact.on + timedelta(days=1)}
    return sorted(days)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_accepted_recording_order_gives_the_same_state_on_every_date(
    data: st.DataObject,
) -> None:
    facts = data.draw(valid_histories())
    order = data.draw(st.permutations(facts))
    world = record_in_order(facts)
    shuffled = record_in_order(order)
    assert world is not None  # world order is always accepted
    assume(shuffled is not None)
    for day in probe_days(facts):
        assert observable(shuffled, day) == observable(world, day), day


@settings(max_examples=200, deadline=None)
@given(facts=valid_histories(), data=st.data())
def test_retracting_then_re_reporting_restores_the_state(
    facts: list[Fact], data: st.DataObject
) -> None:
    assume(facts)
    target = record_in_order(facts)
    assert target is not None
    before = [observable(target, d) for d in probe_days(facts)]
    victim = data.draw(st.sampled_from(sorted(target.control_events)))
    try:
        target.retract(victim, reason="check", retracted_by="e", recorded_at=RECORDED)
    except DomainError:
        return  # refused because a later event depends on it: state untouched
    on, _, kind, actor = target.control_events[victim]
    record(target, Fact(EventType(kind), on, actor))
    after = [observable(target, d) for d in probe_days(facts)]
    # Re-reporting the same fact puts the world back as it was (ids differ, facts do not).
    assert [a[:4] for a in after] == [b[:4] for b in before]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_intervals_kept_event_by_event_equal_a_full_fold(data: st.DataObject) -> None:
    """What a command re-folds from its own date on (and what a projection reads
    as each event's change) equals re-folding the whole city, whatever mix of
    in-order, backdated and same-day reports and retractions; and a city
    restored without its derived state (as from a snapshot) folds the same."""
    target = city()
    before = target.intervals()
    for _ in range(data.draw(st.integers(1, 25))):
        day = START + timedelta(days=data.draw(st.integers(0, 3000)))
        try:
            if data.draw(st.integers(0, 9)) == 0 and target.control_events:
                victim = data.draw(st.sampled_from(sorted(target.control_events)))
                target.retract(victim, reason="r", retracted_by="e", recorded_at=RECORDED)
            else:
                kind = data.draw(st.sampled_from(list(EventType)))
                record(target, Fact(kind, day, data.draw(st.sampled_from(ACTORS))))
        except DomainError:
            assert target.intervals() == before  # a refused command changes nothing
            continue
        after = target.intervals()
        full = fold(
            target.name,
            target.initial_controller,
            target.tracked_since,
            f"{target.slug}-1",
            [
                TimelineEntry(on, v, EventType(k), a, f"{target.slug}-{v}")
                for on, v, k, a in target.timeline
            ],
        )
        assert after == full
        change = target.last_change
        assert change is not None
        assert sorted(set(before) - set(after), key=str) == sorted(change.removed, key=str)
        assert sorted(set(after) - set(before), key=str) == sorted(change.added, key=str)
        before = after
    restored = copy.copy(target)
    restored.__dict__ = {k: v for k, v in vars(target).items() if k != "_derived"}
    assert restored.intervals() == before
