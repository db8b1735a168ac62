"""A synthetic but realistic newsroom log, decided in memory by the real aggregate.

Cities are registered with a `tracked_since`; each gets a share of the event
budget (log-normal, so a few cities are busy and most are quiet) spread over the
years after it was registered. Every report is decided by `City.report` /
`City.retract`, so the log obeys `domain/control.py`:

* a fresh report follows a plausible Markov chain from the city's state on its
  latest date (held -> contested / captured / recaptured; contested -> repelled,
  captured by the assailant, or corroborated);
* a backdated report (`backdated` share) lands 1-120 days before the latest
  recorded event, chosen from the state on that day; a candidate that would break
  a later event is refused by the domain and the next one is tried;
* a retraction (`retracted` share) withdraws a recent event; if the domain refuses
  (a later event would lose its footing) the world-latest event is retracted,
  which is always allowed.

Record times come from a `SimClock` that only moves forward: all decisions are
made in global record-time order, and the log is handed out in yearly rounds of
cities with pending events, so notification order follows record time round by
round, as in a log that grew over 26 years.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dateline.domain.city import City
from dateline.domain.control import EventType, Source, Status, TimelineEntry, fold
from dateline.domain.errors import ControlRuleViolation

EPOCH_START = datetime(2000, 1, 1, tzinfo=UTC)
LOG_END = datetime(2026, 6, 30, tzinfo=UTC)  # the synthetic log stops before "now"
LAST_TRACKED_SINCE = date(2022, 1, 1)
MAX_SHARE = 8.0  # no city gets more than 8x the mean number of events

COUNTRIES: list[tuple[str, tuple[float, float, float, float], str, list[str]]] = [
    # name, (lat_min, lat_max, lon_min, lon_max), government, challengers
    ("Afghanistan", (29.5, 38.5, 61.0, 71.0), "Afghan government", ["Taliban", "ISKP", "NRF"]),
    ("Syria", (32.5, 37.0, 36.0, 41.5), "Syrian government", ["SDF", "HTS", "SNA", "ISIS"]),
    ("Iraq", (29.5, 37.0, 39.0, 48.0), "Iraqi government", ["ISIS", "Peshmerga", "PMF"]),
    ("Yemen", (12.5, 18.5, 43.0, 53.0), "Yemeni government", ["Houthis", "STC", "AQAP"]),
    ("Libya", (20.0, 33.0, 10.0, 25.0), "GNA", ["LNA", "ISIS", "Misrata brigades"]),
    ("Mali", (10.5, 24.5, -12.0, 4.0), "Malian government", ["JNIM", "ISGS", "CMA"]),
    ("Sudan", (9.0, 22.0, 22.0, 38.0), "Sudanese Armed Forces", ["RSF", "SPLM-N"]),
    ("Myanmar", (10.0, 28.0, 92.5, 101.0), "Tatmadaw", ["Arakan Army", "KIA", "PDF", "TNLA"]),
]
SYLLABLES = [
    "ka", "ra", "bad", "dar", "shah", "kot", "qal", "zar", "mir", "sar", "ban", "gul",
    "tar", "hel", "dun", "mar", "jan", "kun", "zib", "nor", "pol", "lash", "far", "gar",
    "ab", "ish", "lan", "tin", "mos", "hom", "ale", "sir", "ta", "wah", "ein", "tal",
]  # fmt: skip
SOURCES = ["Reuters", "AFP", "AP", "Al Jazeera", "BBC", "local stringer", "ministry", "ACLED"]
REPORTERS = [f"reporter:{n}" for n in ("amal", "bilal", "chen", "dara", "emre", "farah")]
EDITORS = ["editor:gita", "editor:hamid"]
QUOTES = [
    "Fighters were seen in the main bazaar.",
    "The governor's compound changed hands overnight.",
    "Residents report heavy clashes on the outskirts.",
    "Officials confirmed the city is under their control.",
]
REASONS = [
    "duplicate of an earlier wire report",
    "the source withdrew the claim",
    "wrong city: the report concerned a nearby district",
    "could not be confirmed by a second source",
]


@dataclass(frozen=True)
class SynthConfig:
    cities: int
    events: int
    backdated: float = 0.05
    retracted: float = 0.01
    seed: int = 4
    # False: fresh reports (chosen legal by the frontier mirror) are triggered
    # without `City.report`'s O(events) rule check, and every city's whole
    # timeline is checked once by the domain's fold at the end (`verify`).
    # Backdated reports and retractions always go through the domain's checks.


class SimClock:
    """A callable clock set by the generator; it never moves backwards."""

    def __init__(self, start: datetime = EPOCH_START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> datetime:
        self.now = max(self.now + timedelta(microseconds=1), moment)
        return self.now


@dataclass
class Frontier:
    """The city's state after its world-latest event (what a reporter knows)."""

    status: Status
    controller: str
    contested_by: str | None
    holders: set[str]


@dataclass
class CityPlan:
    slug: str
    actors: list[str]
    registered_at: datetime
    tracked_since: date
    city: City | None = None
    frontier: Frontier | None = None
    taken: bool = False  # handed to the HTTP load: this process no longer knows its state


@dataclass
class SynthStats:
    registered: int = 0
    reports: int = 0
    backdated: int = 0
    retracted: int = 0
    backdated_refused: int = 0  # candidates the domain refused (then another was tried)
    retract_refused: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return self.registered + self.reports + self.backdated + self.retracted


def frontier_of(city: City) -> Frontier:
    intervals = city.intervals()
    state = intervals[-1].state
    holders = {i.state.controller for i in intervals if i.state.controller}
    assert state.controller is not None
    return Frontier(state.status, state.controller, state.contested_by, holders)


def advance(frontier: Frontier, kind: EventType, actor: str) -> None:
    if kind is EventType.CONTESTED:
        frontier.status, frontier.contested_by = Status.CONTESTED, actor
    else:
        frontier.status, frontier.controller, frontier.contested_by = Status.HELD, actor, None
        frontier.holders.add(actor)


def next_fresh(rng: random.Random, frontier: Frontier, actors: list[str]) -> tuple[EventType, str]:
    """A plausible next event after the city's latest state (always legal)."""
    others = [a for a in actors if a != frontier.controller]
    r = rng.random()
    if frontier.status is Status.HELD:
        former = sorted(frontier.holders - {frontier.controller})
        if r < 0.7 or (r >= 0.9 and not former):
            return EventType.CONTESTED, rng.choice(others)
        if r < 0.9:
            return EventType.CAPTURED, rng.choice(others)
        return EventType.RETAKEN, rng.choice(former)
    assailant = frontier.contested_by or rng.choice(others)
    if r < 0.45:
        return EventType.RETAKEN, frontier.controller  # the attack was repelled
    if r < 0.8:
        return EventType.CAPTURED, assailant
    if r < 0.93 or len(others) < 2:
        return EventType.CONTESTED, assailant  # another report of the same assault
    return EventType.CONTESTED, rng.choice([a for a in others if a != assailant])


class LogBuilder:
    """Decides the whole log in memory; `rounds()` yields cities with pending events."""

    def __init__(self, config: SynthConfig) -> None:
        if config.events < config.cities:
            raise ValueError("need at least one event (the registration) per city")
        self.config = config
        self.rng = random.Random(config.seed)
        self.clock = SimClock()
        self.stats = SynthStats()
        self.plans: list[CityPlan] = []
        self._report_seq = 0
        self._new_city_args: dict[str, dict[str, Any]] = {}
        self._make_plans()

    # ------------------------------------------------------------------ set-up
    def _make_plans(self) -> None:
        rng = self.rng
        span = (LAST_TRACKED_SINCE - EPOCH_START.date()).days
        for i in range(self.config.cities):
            country, (la0, la1, lo0, lo1), government, challengers = COUNTRIES[i % len(COUNTRIES)]
            name = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
            slug = f"{name.lower()}-{i:05d}"
            since = EPOCH_START.date() + timedelta(days=rng.randrange(span))
            registered_at = datetime.combine(since, datetime.min.time(), UTC) + timedelta(
                hours=rng.uniform(6, 18)
            )
            self.plans.append(CityPlan(slug, [government, *challengers], registered_at, since))
            self._new_city_args[slug] = {
                "slug": slug,
                "name": name,
                "province": f"{rng.choice(SYLLABLES).capitalize()}{rng.choice(SYLLABLES)}",
                "country": country,
                "lat": round(rng.uniform(la0, la1), 4),
                "lon": round(rng.uniform(lo0, lo1), 4),
                "population": int(rng.lognormvariate(11, 1.2)),
                "initial_controller": government,
                "tracked_since": since,
            }

    def _schedule(self) -> list[tuple[float, int, int]]:
        """(record time, 0 = register / 1 = event, city index), sorted by time."""
        rng = self.rng
        n = self.config.cities
        weights = [min(rng.lognormvariate(0, 0.9), MAX_SHARE) for _ in range(n)]
        budget = self.config.events - n
        total = sum(weights)
        counts = [int(budget * w / total) for w in weights]
        for i in rng.sample(range(n), budget - sum(counts)) if budget > sum(counts) else []:
            counts[i] += 1
        end = LOG_END.timestamp()
        schedule: list[tuple[float, int, int]] = []
        for i, plan in enumerate(self.plans):
            start = plan.registered_at.timestamp()
            schedule.append((start, 0, i))
            first = start + 3600
            schedule.extend((rng.uniform(first, end), 1, i) for _ in range(counts[i]))
        schedule.sort()
        return schedule

    # ------------------------------------------------------------------- rounds
    def rounds(self) -> Iterator[tuple[int, list[City]]]:
        """Yield (year, cities with pending events) in record-time order."""
        schedule = self._schedule()
        pending: dict[int, City] = {}
        year = EPOCH_START.year
        for moment, kind, index in schedule:
            now = datetime.fromtimestamp(moment, UTC)
            if now.year != year:
                if pending:
                    yield year, list(pending.values())
                    pending = {}
                year = now.year
            self.clock.set(now)
            plan = self.plans[index]
            if kind == 0:
                plan.city = City.register(
                    **self._new_city_args[plan.slug], recorded_at=self.clock()
                )
                plan.frontier = frontier_of(plan.city)
                self.stats.registered += 1
            else:
                self._decide(plan)
            assert plan.city is not None
            pending[index] = plan.city
        if pending:
            yield year, list(pending.values())

    def _decide(self, plan: CityPlan) -> None:
        rng, city = self.rng, plan.city
        assert city is not None and plan.frontier is not None
        r = rng.random()
        if r < self.config.retracted and city.timeline and self._retract(plan):
            return
        if r < self.config.retracted + self.config.backdated and self._backdate(plan):
            return
        self._fresh(plan)

    def _source(self, slug: str) -> Source:
        rng = self.rng
        self._report_seq += 1
        quote = rng.choice(QUOTES) if rng.random() < 0.5 else None
        return Source(rng.choice(SOURCES), f"https://news.example/{slug}/{self._report_seq}", quote)

    def _report(self, plan: CityPlan, kind: EventType, on: date, actor: str) -> None:
        rng, city = self.rng, plan.city
        assert city is not None
        source = self._source(plan.slug)
        reporter = rng.choice(REPORTERS)
        note = "confirmed by two sources" if rng.random() < 0.3 else None
        report_id = f"wire-{rng.getrandbits(64):016x}" if rng.random() < 0.8 else None
        # City.report checks the rules from the report's date on: one rule step
        # for a report dated after the others, so every report goes through it.
        city.report(
            kind,
            occurred_on=on,
            actor=actor,
            source=source,
            reported_by=reporter,
            recorded_at=self.clock(),
            note=note,
            report_id=report_id,
        )
        self.stats.by_type[kind.value] = self.stats.by_type.get(kind.value, 0) + 1

    def verify(self) -> int:
        """Fold every city's whole timeline with the domain's rules; returns cities checked."""
        checked = 0
        for plan in self.plans:
            city = plan.city
            if city is not None:
                entries = [
                    TimelineEntry(on, v, EventType(k), a, f"{city.slug}-{v}")
                    for on, v, k, a in city.timeline
                ]
                full = fold(
                    city.name,
                    city.initial_controller,
                    city.tracked_since,
                    f"{city.slug}-1",
                    entries,
                )
                assert full == city.intervals(), city.slug
                checked += 1
        return checked

    def _fresh(self, plan: CityPlan) -> None:
        city, frontier = plan.city, plan.frontier
        assert city is not None and frontier is not None
        now = self.clock()
        on = (now - timedelta(hours=self.rng.uniform(0, 36))).date()
        latest = city.timeline[-1][0] if city.timeline else plan.tracked_since
        on = max(on, latest, plan.tracked_since)
        kind, actor = next_fresh(self.rng, frontier, plan.actors)
        self._report(plan, kind, on, actor)
        advance(frontier, kind, actor)
        self.stats.reports += 1

    def _backdate(self, plan: CityPlan) -> bool:
        rng, city = self.rng, plan.city
        assert city is not None
        if not city.timeline:
            return False
        latest: date = city.timeline[-1][0]
        room = (latest - plan.tracked_since).days
        if room < 1:
            return False
        on = latest - timedelta(days=rng.randint(1, min(120, room)))
        state = city.status_on(on)
        assert state.controller is not None
        others = [a for a in plan.actors if a != state.controller]
        if state.status is Status.CONTESTED and state.contested_by:
            bold = [
                (EventType.CAPTURED, state.contested_by),
                (EventType.RETAKEN, state.controller),
            ]
            rng.shuffle(bold)
            candidates = [*bold, (EventType.CONTESTED, state.contested_by)]
        else:
            candidates = [
                (EventType.CONTESTED, rng.choice(others)),
                (EventType.CAPTURED, rng.choice(others)),
            ]
            if rng.random() < 0.5:
                candidates.reverse()
        for kind, actor in candidates:
            try:
                self._report(plan, kind, on, actor)
            except ControlRuleViolation:
                self.stats.backdated_refused += 1
                continue
            plan.frontier = frontier_of(city)
            self.stats.backdated += 1
            return True
        return False

    def _retract(self, plan: CityPlan) -> bool:
        rng, city = self.rng, plan.city
        assert city is not None
        recent = city.timeline[-10:]
        targets = [rng.choice(recent), recent[-1]]  # the world-latest one is always retractable
        for entry in targets:
            try:
                city.retract(
                    f"{city.slug}-{entry[1]}",
                    reason=rng.choice(REASONS),
                    retracted_by=rng.choice(EDITORS),
                    recorded_at=self.clock(),
                )
            except ControlRuleViolation:
                self.stats.retract_refused += 1
                continue
            plan.frontier = frontier_of(city)
            self.stats.retracted += 1
            return True
        return False
