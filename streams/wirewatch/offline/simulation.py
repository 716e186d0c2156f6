"""A synthetic wire feed with known stories and spikes, in the seed page's format.

Background topics publish briefs at daily-cycled, overdispersed rates (a
gamma-distributed hourly multiplier on a sine-shaped daily profile); injected
stories publish a burst of briefs from a known start. A scraper snapshots the
"Meer uit Buitenland" page every ``snapshot_every`` seconds: the newest brief
is the page's lead, the next ``list_size`` form the list with their ages.

The ground truth names, for every brief, its story and whether it belongs to
an injected spike, plus each spike's start and size. Deterministic for a given
seed. Pure Python: no Kafka, no Faust.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from ..core.parser import brief_id

__all__ = ["Scenario", "SimBrief", "Spike", "Snapshot", "Simulation", "simulate"]

_CITIES = ["BRUSSEL", "WASHINGTON", "MOSKOU", "BERLIJN", "PARIJS", "TOKIO", "GENÈVE", "DEN HAAG", "LONDEN",
           "ROME", "MADRID", "KIEV", "ANKARA", "NEW YORK", "PEKING", "NAIROBI", "TEL AVIV", "SINT-PETERSBURG"]
_AGENCIES = [["ANP"], ["ANP", "RTR"], ["ANP", "AFP"], ["ANP", "AFP", "RTR"], ["ANP", "DPA"]]
# Each theme has its own words; stories draw from their theme so that briefs of
# one story resemble each other and briefs of different stories do not.
_THEMES = {
    "verkiezingen": "verkiezingen stembus kandidaat campagne peiling uitslag coalitie stemmen partij lijsttrekker debat kiezers",
    "handel": "importtarieven handelsakkoord export douane heffingen onderhandelingen staal tarieven markt sancties goederen bedrijven",
    "energie": "kerncentrale gasleiding stroomnet energieprijzen reactor brandstof olievelden pijpleiding levering netbeheerder windparken opslag",
    "conflict": "troepen beschietingen wapenstilstand frontlinie luchtaanval drones soldaten vredesbesprekingen artillerie offensief militairen bestand",
    "storm": "storm overstromingen evacuatie dijken regenval orkaan windstoten hulpdiensten noodtoestand schade modderstromen reddingswerkers",
    "gezondheid": "uitbraak vaccinatie ziekenhuizen besmettingen virus quarantaine patiënten artsen gezondheidsdienst epidemie behandeling medicijnen",
    "diplomatie": "topontmoeting ambassadeur staatsbezoek verdrag gezant bondgenoten toppers gesprekken akkoord delegatie overleg verklaring",
    "economie": "inflatie rente centrale bank werkloosheid groei begroting schulden beurs valuta investeringen recessie lonen",
    "justitie": "rechtbank proces aanklager vonnis verdachte hoger beroep advocaten getuigen arrestatie onderzoek gevangenis rechters",
    "klimaat": "klimaattop uitstoot emissies opwarming doelen fossiele hernieuwbare klimaatfonds bossen smeltende gletsjers hittegolf",
}
_GENERIC = "minister regering president dinsdag woensdag donderdag verklaring woordvoerder gezegd volgens land officieel"
_SUBJECTS = [
    ("japan", "Japan"), ("germany", "Duitsland"), ("france", "Frankrijk"), ("russia", "Rusland"), ("ukraine", "Oekraïne"),
    ("china", "China"), ("turkey", "Turkije"), ("brazil", "Brazilië"), ("india", "India"), ("kenya", "Kenia"),
    ("mexico", "Mexico"), ("canada", "Canada"), ("poland", "Polen"), ("spain", "Spanje"), ("italy", "Italië"),
    ("egypt", "Egypte"), ("argentina", "Argentinië"), ("sweden", "Zweden"), ("norway", "Noorwegen"), ("chile", "Chili"),
    ("greenland", "Groenland"), ("iceland", "IJsland"), ("portugal", "Portugal"), ("greece", "Griekenland"),
]
# Invented names; each story gets its own spokesperson.
_FIRST = ["Anna", "Pieter", "Marta", "Jonas", "Ayumi", "Kofi", "Lucía", "Tomasz", "Ines", "Oleksandr", "Farah", "Erik",
          "Sanne", "Hiroshi", "Amara", "Mateo", "Freya", "Dmitri", "Leila", "Bram"]
_LAST = ["Verhoef", "Calvijn", "Quesada", "Lindqvist", "Taniguchi", "Mensah", "Ferrer", "Wrona", "Carvalho",
         "Hrytsenko", "Haddad", "Solberg", "Brouwenstijn", "Okonkwo", "Villanueva", "Halvorsen", "Petrakis", "Novák"]


@dataclass(frozen=True)
class Scenario:
    """What to simulate; the defaults are the scenario the README reports."""

    hours: float = 24.0
    background_topics: int = 16
    background_rate_per_hour: float = 24.0
    daily_amplitude: float = 0.6
    overdispersion: float = 3.0
    spikes: int = 8
    spike_size: tuple[int, int] = (6, 12)
    spike_minutes: tuple[float, float] = (20.0, 45.0)
    snapshot_every: float = 300.0
    list_size: int = 12
    seed: int = 1


@dataclass(frozen=True)
class SimBrief:
    id: str
    story: str
    topic: str
    spike: str | None
    city: str
    agencies: tuple[str, ...]
    text: str
    headline: str
    published_at: datetime


@dataclass(frozen=True)
class Spike:
    id: str
    topic: str
    story: str
    start: datetime
    size: int


@dataclass(frozen=True)
class Snapshot:
    fetched_at: datetime
    page: str


@dataclass
class Simulation:
    scenario: Scenario
    start: datetime
    briefs: list[SimBrief] = field(default_factory=list)
    spikes: list[Spike] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)

    def captured_ids(self) -> set[str]:
        """Briefs that at least one snapshot carried."""
        return {b.id for b in self.briefs if any(b.text in s.page for s in self.snapshots)}


class _Writer:
    """Makes brief texts for one story from its subject, theme and people."""

    def __init__(self, rng: random.Random, subject_name: str, theme: str, person: str, city: str) -> None:
        self.rng = rng
        self.subject = subject_name
        self.words = _THEMES[theme].split()
        self.person = person
        self.city = city

    def text(self, serial: int) -> tuple[str, str]:
        rng = self.rng
        words = rng.sample(self.words, 4)
        generic = rng.sample(_GENERIC.split(), 2)
        first = rng.choice([
            f"In {self.subject} gaat het over {words[0]} en {words[1]}, zegt {self.person}.",
            f"{self.person} spreekt in {self.subject} over {words[0]} en de {words[1]}.",
            f"De {generic[0]} van {self.subject} meldt nieuwe {words[0]} rond de {words[1]}.",
        ])
        second = rng.choice([
            f"Volgens {self.person} zijn de {words[2]} en de {words[3]} {generic[1]} besproken.",
            f"Ook de {words[2]} speelt mee; de {words[3]} blijft een punt van zorg in {self.subject}.",
            f"De {generic[1]} wijst op {words[2]} en {words[3]}.",
        ])
        # The serial keeps every brief's text (and so its id) distinct.
        return f"{first} {second} Het is bericht {serial}.", f"{self.subject}: {words[0]} en {words[1]}"


def _hourly_rates(rng: random.Random, scenario: Scenario, start: datetime, mean_per_hour: float) -> list[float]:
    rates = []
    for hour in range(math.ceil(scenario.hours)):
        moment = start + timedelta(hours=hour)
        phase = 2 * math.pi * ((moment.hour + 0.5) / 24 - 0.25)  # quiet at night, busiest in the afternoon
        profile = 1 + scenario.daily_amplitude * math.sin(phase)
        shape = scenario.overdispersion
        rates.append(mean_per_hour * profile * rng.gammavariate(shape, 1 / shape))
    return rates


def _poisson_times(rng: random.Random, start: datetime, rates: list[float]) -> list[datetime]:
    times = []
    for hour, rate in enumerate(rates):
        moment = 0.0
        while rate > 0:
            moment += rng.expovariate(rate)
            if moment >= 1:
                break
            times.append(start + timedelta(hours=hour + moment))
    return times


def _age_text(age: timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    if minutes < 1:
        return "zojuist"
    if minutes < 60:
        return "1 minuut geleden" if minutes == 1 else f"{minutes} minuten geleden"
    if minutes < 24 * 60:
        return f"{minutes // 60} uur geleden"
    return "gisteren"


def _render(lead: SimBrief | None, items: list[SimBrief], fetched_at: datetime) -> str:
    lines = []
    if lead is not None:
        lines.append(lead.headline)
        lines.append(f"{lead.city} ({'/'.join(lead.agencies)}) - {lead.text}")
    lines.append("Meer uit Buitenland")
    body = ""
    for item in items:
        dateline = f"{item.city} ({'/'.join(item.agencies)}) - {item.text}"
        # each age closes its brief and is glued to the next dateline, as on real pages
        body += dateline + "\n" + _age_text(fetched_at - item.published_at)
    lines.append(body)
    return "\n".join(lines) + "\n"


def simulate(scenario: Scenario, start: datetime | None = None) -> Simulation:
    """Generate the feed, its snapshots and its ground truth."""
    rng = random.Random(scenario.seed)
    start = (start or datetime(2026, 3, 2, tzinfo=timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    simulation = Simulation(scenario, start)
    subjects = rng.sample(_SUBJECTS, scenario.background_topics + scenario.spikes)
    themes = list(_THEMES)
    people = iter(rng.sample([f"{first} {last}" for first in _FIRST for last in _LAST], len(subjects)))
    raw: list[tuple[datetime, str, str, str | None, _Writer]] = []

    per_topic = scenario.background_rate_per_hour / max(scenario.background_topics, 1)
    for index, (topic, name) in enumerate(subjects[: scenario.background_topics]):
        writer = _Writer(rng, name, themes[index % len(themes)], next(people), rng.choice(_CITIES))
        story = f"background-{topic}"
        for moment in _poisson_times(rng, start, _hourly_rates(rng, scenario, start, per_topic)):
            raw.append((moment, story, topic, None, writer))

    horizon = scenario.hours * 3600
    for index, (topic, name) in enumerate(subjects[scenario.background_topics :]):
        # Spikes start after the first hours, once the stream has a history, and never overlap in topic.
        offset = rng.uniform(0.15, 0.9) * horizon
        begin = start + timedelta(seconds=offset)
        size = rng.randint(*scenario.spike_size)
        minutes = rng.uniform(*scenario.spike_minutes)
        spike_id = f"spike-{index}-{topic}"
        story = f"injected-{topic}"
        writer = _Writer(rng, name, rng.choice(themes), next(people), rng.choice(_CITIES))
        # Breaking news comes fast first: arrival times front-loaded within the burst.
        offsets = sorted([0.0] + [minutes * rng.random() ** 1.5 for _ in range(size - 1)])
        for minute in offsets:
            raw.append((begin + timedelta(minutes=minute), story, topic, spike_id, writer))
        simulation.spikes.append(Spike(spike_id, topic, story, begin.replace(microsecond=0), size))

    raw.sort(key=lambda item: item[0])
    for serial, (moment, story, topic, spike, writer) in enumerate(raw):
        text, headline = writer.text(serial)
        agencies = tuple(rng.choice(_AGENCIES))
        moment = moment.replace(microsecond=0)
        simulation.briefs.append(
            SimBrief(brief_id(writer.city, list(agencies), text), story, topic, spike, writer.city, agencies, text,
                     headline, moment)
        )

    fetched_at = start + timedelta(seconds=scenario.snapshot_every)
    published = simulation.briefs
    cursor = 0
    while fetched_at <= start + timedelta(hours=scenario.hours):
        while cursor < len(published) and published[cursor].published_at <= fetched_at:
            cursor += 1
        newest = published[max(cursor - scenario.list_size - 1, 0) : cursor][::-1]
        if newest:
            lead, items = newest[0], newest[1:]
            simulation.snapshots.append(Snapshot(fetched_at, _render(lead, items, fetched_at)))
        fetched_at += timedelta(seconds=scenario.snapshot_every)
    return simulation
