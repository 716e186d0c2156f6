"""Briefs → stories and alerts: term extraction, clustering, window counts and spike detection in one step.

:class:`StoryEngine` is what the worker's ``track_stories`` agent and the
offline ``wirewatch cluster`` command both run, one brief at a time in event
order. Its state sits in mappings and :class:`~wirewatch.core.windows.WindowCounts`
handed to it: Faust tables in the worker, dicts and
:class:`~wirewatch.core.windows.HoppingCounts` offline.

Alerting
--------
- A topic named in the brief is evaluated on the busiest window that contains
  the brief (earliest on ties) by :class:`~wirewatch.core.spikes.SpikeDetector`.
- Several topics spiking in one brief are one spike: the most surprising
  topic (then the rarer name) carries the alert, the others are listed as
  ``related_topics`` and share its cooldown. A topic spiking in a brief that
  also names the topic of its story's active alert joins that alert instead
  of raising its own.
- While an alert is active (``cooldown`` seconds of event time after it was
  raised) more briefs revise it under the same id; a count that reaches
  ``escalation_factor`` times the count it was raised with raises an
  escalation with a new id.
- A busy topic gone quiet (a drop, judged on the window that just closed)
  raises an alert of its own, with no story and no revisions.
- Ids derive from topic, window, escalation level and direction: replays give the same ids.
- A brief more than ``window_retention`` older than the newest one is late:
  its windows, and with them its alert and the mark of an earlier reading,
  may be forgotten, so it joins its story but counts in no window and raises,
  revises or re-sends no alert. Within the retention a late brief counts and
  revises its topic's alert as any other.
Pure Python: no Kafka, no Faust.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..models import Alert, ClusterInput, CountSeries, Story
from .clustering import ClusterConfig, Clusterer, heaviest
from .embedding import SentenceEncoder, default_encoder
from .marks import ProcessedMarks
from .spikes import DROP, RISE, DetectorConfig, Evaluation, SpikeDetector, TopicHistory
from .terms import TermExtractor, term_rarity
from .windows import HoppingCounts, HoppingWindows, WindowCounts

__all__ = ["EngineState", "EngineResult", "HeldWrites", "SpikeTracker", "StoryEngine", "create_engine", "alert_id"]

_SEVERITIES = ("medium", "high", "critical")


@dataclass
class EngineState:
    """Everything the engine remembers between briefs."""

    stories: MutableMapping[str, dict]
    topic_history: MutableMapping[str, dict]
    alerts: MutableMapping[str, dict]
    stream: MutableMapping[str, float]
    story_counts: WindowCounts
    processed: ProcessedMarks

    @classmethod
    def in_memory(cls, config: DetectorConfig) -> "EngineState":
        windows = HoppingWindows(config.window_size, config.window_step)
        return cls({}, {}, {}, {}, HoppingCounts(windows), ProcessedMarks({}))


_DELETED, _NOT_HELD = object(), object()


class HeldWrites(MutableMapping[str, object]):
    """A mapping over ``store`` that holds its writes and deletions until :meth:`apply`; reads see them at once.

    Every write to a Faust table is a changelog record. A batch of briefs on
    one spiking topic writes that topic's state once per brief; held, it
    reaches the table once per batch.
    """

    def __init__(self, store: MutableMapping) -> None:
        self.store = store
        self._held: dict[str, object] = {}

    def __getitem__(self, key: str):
        value = self._held.get(key, _NOT_HELD)
        if value is _NOT_HELD:
            return self.store[key]
        if value is _DELETED:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value) -> None:
        self._held[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._held[key] = _DELETED

    def __contains__(self, key: object) -> bool:
        if key in self._held:
            return self._held[key] is not _DELETED
        return key in self.store

    def __iter__(self) -> Iterator[str]:
        held = self._held
        yield from (key for key in list(self.store) if key not in held)
        yield from (key for key, value in list(held.items()) if value is not _DELETED)

    def __len__(self) -> int:
        store = self.store
        added = sum(1 for key, value in self._held.items() if value is not _DELETED and key not in store)
        removed = sum(1 for key, value in self._held.items() if value is _DELETED and key in store)
        return len(store) + added - removed

    def discard(self) -> None:
        """Forget what is held: the store stays as it was."""
        self._held.clear()

    def apply(self) -> int:
        """Write what is held to the store; return how many keys it wrote or deleted."""
        store = self.store
        for key, value in self._held.items():
            if value is not _DELETED:
                store[key] = value
            elif key in store:
                del store[key]
        applied = len(self._held)
        self._held.clear()
        return applied


@dataclass
class EngineResult:
    """What one brief did: its story, the alerts it raised or revised, and whether it was seen before.

    ``record`` is the entry :meth:`StoryEngine.mark_processed` stores for the
    brief; None when the brief was already marked. ``late``: the brief is
    older than the windows the engine still keeps; it joined a story and
    touched no window or alert.
    """

    story: Story | None
    alerts: list[Alert] = field(default_factory=list)
    replayed: bool = False
    brief_id: str = ""
    record: dict | None = None
    late: bool = False


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)


def alert_id(topic: str, window_start: float, escalation: int, direction: str = RISE) -> str:
    # A rise keeps the ids it had before drops existed: only a drop adds its direction.
    key = f"{topic}\x1f{window_start:.0f}\x1f{escalation}" + ("" if direction == RISE else f"\x1f{direction}")
    digest = hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
    return f"alert-{digest}"


def topic_zipf(topic: str, language: str | None) -> float:
    return 8.0 - term_rarity(topic, language)


#: Places, sections and languages an alert lists at most: what desks need, a row that stays small.
_ORIGINS_KEPT = 10


def _with_origin(record: dict, origin: dict[str, str | None]) -> dict:
    """``record`` also listing the city, section and language of a brief that raised or revised it."""
    record = dict(record)
    for key, value in (("cities", origin.get("city")), ("sections", origin.get("section")),
                       ("languages", origin.get("language"))):
        known = record.get(key, [])
        if value and value not in known and len(known) < _ORIGINS_KEPT:
            record[key] = [*known, value]
    return record


class SpikeTracker:
    """Window counts, topic histories and alert state: everything between a mention and an alert."""

    def __init__(self, config: DetectorConfig, state: EngineState) -> None:
        self.config = config
        self.detector = SpikeDetector(config)
        self.state = state
        #: Topic, event time → how strongly editors have called its alerts noise lately (core.feedback).
        self.noise_level: Callable[[str, float], float] = lambda topic, at: 0.0

    def advance(self, timestamp: float) -> tuple[float, float]:
        """Move the stream clock; return (observed_since, watermark)."""
        stream = self.state.stream
        observed_since = min(stream.get("observed_since", timestamp), timestamp)
        watermark = max(stream.get("watermark", timestamp), timestamp)
        # Written only when they move: each write is a changelog record.
        if stream.get("observed_since") != observed_since:
            stream["observed_since"] = observed_since
        if stream.get("watermark") != watermark:
            stream["watermark"] = watermark
        # Housekeeping runs once per window step of event time, so a replay does it at the same points;
        # the sweep of every topic's history once per window retention (it reads every row; a topic is kept for days).
        previous = stream.get("pruned_at")
        if previous is None or watermark - previous >= self.config.window_step:
            stream["pruned_at"] = watermark
            every = self.config.window_retention
            self.prune(watermark, sweep_topics=previous is None or watermark // every != previous // every)
        return observed_since, watermark

    def kept_since(self, watermark: float) -> float:
        """The oldest event time whose windows are still kept: older briefs are late."""
        return watermark - self.config.window_retention

    def prune(self, watermark: float, *, sweep_topics: bool = True) -> None:
        """Forget windows past their retention, alerts past cooldown and retention, and decayed topic histories.

        Windows are dropped by event time, behind the newest brief, so a replay
        of old pages counts exactly as a live feed did.
        """
        config = self.config
        self.state.story_counts.forget_before(self.kept_since(watermark))
        # An alert is kept past its cooldown for as long as windows are: a brief
        # that arrives late (its candidate partition lagged behind the others)
        # still finds the alert it belongs to instead of raising a second one.
        stale_alerts = [
            key
            for key, record in self.state.alerts.items()
            if watermark - record["raised_at"] > config.cooldown + config.window_retention
        ]
        for key in stale_alerts:
            del self.state.alerts[key]
        if not sweep_topics:
            return
        # A topic silent this long has a level below a thousandth of what it was: nothing left to learn from.
        horizon = config.window_size * 2 + config.decay_time * math.log(1000)
        stale_topics = [
            topic
            for topic, data in self.state.topic_history.items()
            if (TopicHistory.newest_in(data) or float("-inf")) < watermark - horizon
        ]
        for topic in stale_topics:
            del self.state.topic_history[topic]

    def observe(
        self,
        mentions: dict[str, int],
        timestamp: float,
        story_id: str | None,
        language: str | None,
        *,
        brief_id: str | None = None,
        new_to_story: bool = True,
        origin: dict[str, str | None] | None = None,
    ) -> list[Alert]:
        """Count ``mentions`` (topic → how many at ``timestamp``) and return the alerts raised or revised.

        ``origin`` is the brief's ``city``, ``section`` and ``language``: a
        rise it raises or revises lists them, so desks can be told whose it is.

        ``brief_id`` names the one brief the mentions come from. A brief that a
        topic's step already lists was counted before a crash, and is not
        counted again; nor is one whose story already held it
        (``new_to_story`` False) when the step is too busy to list every brief.
        """
        state, config, detector = self.state, self.config, self.detector
        observed_since, _ = self.advance(timestamp)
        step = detector.step_of(timestamp)
        evaluations: list[Evaluation] = []
        for topic, count in mentions.items():
            history = TopicHistory.from_dict(state.topic_history.get(topic), step=config.window_step)
            zipf = topic_zipf(topic, language)
            if brief_id is not None and (
                history.holds(step, brief_id) or (not new_to_story and not history.is_fully_listed(step))
            ):
                count = 0
            ids = [[brief_id, story_id or ""]] if brief_id is not None else []
            closed = []
            known = bool(count) or topic in state.topic_history
            if known:
                closed = detector.add(history, timestamp, count, ids, observed_since=observed_since, zipf=zipf)
            evaluations.append(detector.evaluate(topic, history, timestamp, observed_since, zipf, closed,
                                                 noise_level=self.noise_level(topic, timestamp)))
            if known:
                state.topic_history[topic] = history.to_dict()
        return self._alerts(evaluations, story_id, timestamp, language, origin)

    def _active(self, key: str, timestamp: float) -> dict | None:
        record = self.state.alerts.get(key)
        if record and abs(timestamp - record["raised_at"]) < self.config.cooldown:
            return record
        return None

    def _alerts(
        self, evaluations: list[Evaluation], story_id: str, timestamp: float, language: str | None,
        origin: dict[str, str | None] | None = None,
    ) -> list[Alert]:
        touched: list[str] = []  # topics whose alert changed, emitted once each at the end
        story_alert = self._active(f"story:{story_id}", timestamp)
        if story_alert is not None and story_alert["topic"] not in {e.topic for e in evaluations}:
            # A story that lives for days gathers many topics; only a brief naming the alert's topic too
            # ties a new spike to it. Otherwise one broad story would swallow every spike in it.
            story_alert = None
        candidates = [e.topic for e in evaluations] + ([story_alert["topic"]] if story_alert else [])
        before = {topic: self.state.alerts.get(topic) for topic in candidates}
        fresh: list[Evaluation] = []
        for evaluation in evaluations:
            record = self._active(evaluation.topic, timestamp)
            if record is None:
                if evaluation.direction == RISE:
                    fresh.append(evaluation)
                elif evaluation.direction == DROP:
                    touched.append(self._raise_drop(evaluation, timestamp, language))
            elif (
                record.get("covered_by") is None
                and record.get("direction", RISE) == RISE
                and evaluation.direction != DROP
                and evaluation.count > record["count"]
            ):
                self._revise(evaluation.topic, record, evaluation)
                touched.append(evaluation.topic)
        if fresh:
            touched.append(self._raise(fresh, story_id, story_alert, timestamp, language))
        alerts = []
        for topic in dict.fromkeys(touched):
            record = self.state.alerts[topic]
            previous = before.get(topic)
            if previous is not None and previous.get("id") == record["id"]:
                record = {**record, "revision": previous["revision"] + 1}
            if origin and record.get("direction", RISE) == RISE:
                record = _with_origin(record, origin)
            self.state.alerts[topic] = record
            alerts.append(self._emit(topic, record, timestamp))
        return alerts

    def _raise(
        self, fresh: list[Evaluation], story_id: str, story_alert: dict | None, timestamp: float, language: str | None
    ) -> str:
        """Raise one alert for topics spiking together, or fold them into the story's active alert."""
        owner_topic = story_alert["topic"] if story_alert else None
        owner = self._active(owner_topic, timestamp) if owner_topic else None
        if owner is not None and owner.get("covered_by") is None:
            record = dict(owner)
            record["related"] = sorted(set(record["related"]) | {e.topic for e in fresh})
            self.state.alerts[owner_topic] = record
            self._cover([e.topic for e in fresh], owner_topic, timestamp)
            return owner_topic
        fresh = sorted(fresh, key=lambda e: (-e.score, topic_zipf(e.topic, language), e.topic))
        lead, others = fresh[0], fresh[1:]
        related = sorted(e.topic for e in others)
        self.state.alerts[lead.topic] = self._record(lead, timestamp, related, story_id, topic_zipf(lead.topic, language))
        self._cover([e.topic for e in others], lead.topic, timestamp)
        self.state.alerts[f"story:{story_id}"] = {"topic": lead.topic, "raised_at": timestamp}
        return lead.topic

    def _raise_drop(self, evaluation: Evaluation, timestamp: float, language: str | None) -> str:
        """A topic gone quiet stands alone: no story, no related topics."""
        zipf = topic_zipf(evaluation.topic, language)
        self.state.alerts[evaluation.topic] = self._record(evaluation, timestamp, [], None, zipf)
        return evaluation.topic

    def _record(
        self, evaluation: Evaluation, timestamp: float, related: list[str], story_id: str | None, zipf: float
    ) -> dict:
        return {
            "id": alert_id(evaluation.topic, evaluation.window_start, 0, evaluation.direction),
            "raised_at": timestamp,
            "first_count": evaluation.count,
            "count": evaluation.count,
            "revision": 1,
            "escalation": 0,
            "window_start": evaluation.window_start,
            "window_end": evaluation.window_end,
            "baseline": evaluation.baseline,
            "score": evaluation.score,
            "direction": evaluation.direction,
            "reason": evaluation.reason,
            "related": related,
            "story_id": story_id,
            "zipf": zipf,
        }

    def _cover(self, topics: list[str], owner: str, timestamp: float) -> None:
        for topic in topics:
            self.state.alerts[topic] = {"covered_by": owner, "raised_at": timestamp}

    def _revise(self, topic: str, record: dict, evaluation: Evaluation) -> None:
        record = dict(record)
        if evaluation.direction is None:
            evaluation = self.detector.rescored(evaluation)
        level = record["escalation"]
        while evaluation.count >= record["first_count"] * self.config.escalation_factor ** (level + 1):
            level += 1
        if level > record["escalation"]:
            record.update(id=alert_id(topic, record["window_start"], level), escalation=level, revision=1)
        record.update(
            count=evaluation.count,
            window_start=evaluation.window_start,
            window_end=evaluation.window_end,
            baseline=evaluation.baseline,
            score=evaluation.score,
            reason=evaluation.reason,
        )
        self.state.alerts[topic] = record

    def current(self, topic: str, timestamp: float) -> Alert | None:
        """The alert ``topic`` carries now, if any."""
        record = self.state.alerts.get(topic)
        if record is None or "id" not in record:
            return None
        return self._emit(topic, record, timestamp)

    def _emit(self, topic: str, record: dict, timestamp: float) -> Alert:
        history = TopicHistory.from_dict(self.state.topic_history.get(topic), step=self.config.window_step)
        listed = history.mentions(record["window_start"], record["window_end"])[: self.config.ids_per_step]
        own_story = [record["story_id"]] if record.get("story_id") else []
        story_ids = sorted({story_id for _, story_id in listed if story_id} | set(own_story))
        story = self.state.stories.get(record["story_id"]) if own_story else None
        sensitivity = self.config.sensitivity
        level = 2 if record["score"] >= 3 * sensitivity else 1 if record["score"] >= 2 * sensitivity else 0
        return Alert(
            id=record["id"],
            revision=record["revision"],
            topic=topic,
            label=Clusterer.label(story) if story else topic,
            title=Clusterer.title(story) if story else topic,
            direction=record.get("direction", RISE),
            reason=record.get("reason", ""),
            related_topics=record["related"],
            story_ids=story_ids,
            window_start=_utc(record["window_start"]),
            window_end=_utc(record["window_end"]),
            count=record["count"],
            baseline=round(record["baseline"], 6),
            score=round(record["score"], 3),
            severity=_SEVERITIES[min(level + record["escalation"], len(_SEVERITIES) - 1)],
            escalation=record["escalation"],
            brief_ids=[brief_id for brief_id, _ in listed],
            samples=story["samples"] if story else [],
            cities=record.get("cities", []),
            sections=record.get("sections", []),
            languages=record.get("languages", []),
            detected_at=_utc(timestamp),
            series=self._series(history, timestamp, record.get("zipf", topic_zipf(topic, None))),
        )

    def _series(self, history: TopicHistory, timestamp: float, zipf: float) -> CountSeries:
        since = self.state.stream.get("observed_since", timestamp)
        first, counts, expected = self.detector.recent_steps(history, timestamp, zipf, since=since)
        return CountSeries(
            start=_utc(first),
            step_seconds=self.config.window_step,
            counts=counts,
            expected=[round(value, 4) for value in expected],
        )


class StoryEngine:
    """Term extraction, clustering and spike tracking for one brief at a time."""

    def __init__(
        self,
        extractor: TermExtractor,
        detector: DetectorConfig,
        clustering: ClusterConfig,
        state: EngineState,
        encoder: SentenceEncoder | None = None,
    ) -> None:
        self.extractor = extractor
        self.clusterer = Clusterer(clustering, state.stories, encoder)
        self.spikes = SpikeTracker(detector, state)
        self.state = state
        self._state_seen: tuple | None = None

    def _state_mark(self) -> tuple:
        """What tells this engine's last write from the tables as they are now."""
        return self.state.stream.get("watermark"), len(self.state.stories)

    def process(self, brief: ClusterInput) -> EngineResult:
        """Apply ``brief`` and mark it processed at once: for state that cannot be half-written."""
        result = self.apply(brief)
        self.mark_processed(result)
        self.state.processed.apply()
        return result

    def apply(self, brief: ClusterInput) -> EngineResult:
        """Assign ``brief`` to a story and update the counts and alerts; do not mark it processed yet.

        A brief marked processed (read again after a crash, before its offset
        was committed) changes nothing: its story and the alerts it touched are
        returned as they stand, flagged ``replayed``. So is a brief whose story
        and topic mentions already hold it although its mark was lost: it is
        counted once.

        The worker marks a batch only after every other write of the batch has
        reached the broker, so a mark that survived a crash vouches for all
        of its brief's state.
        """
        timestamp = brief.published_at.timestamp()
        done = self.state.processed.get(brief.id)
        if done is not None:
            return self._replay(brief, done["story"], done["alerts"], timestamp)
        terms = self.extractor.extract(brief.text, headline=brief.headline, language=brief.language)
        if self._state_seen != self._state_mark():
            # The tables changed behind this engine (recovered after a restart or a rebalance, or a batch's
            # held writes were discarded): the clusterer's term index is derived from them, so rebuild it.
            self.clusterer.reindex()
        _, watermark = self.spikes.advance(timestamp)
        # Older than the windows kept: its window counts, its alert and its processed mark (were it read
        # before) may be forgotten, and what remains would raise a spike again. Its story still gets it.
        late = timestamp < self.spikes.kept_since(watermark)
        self.clusterer.expire(watermark)
        if self.state.stream["pruned_at"] == watermark:
            self._forget_processed(watermark)
        assignment = self.clusterer.assign(brief.id, terms, timestamp, brief.headline or brief.text,
                                           headline=brief.headline, text=brief.text)
        story, opened, extended = assignment.story, assignment.opened, assignment.extended
        self._state_seen = self._state_mark()
        alerts: list[Alert] = []
        if not late:
            if extended:
                self.state.story_counts.add(story["id"], timestamp)
            alerts = self.spikes.observe(
                dict.fromkeys(terms.topics, 1), timestamp, story["id"], terms.language,
                brief_id=brief.id, new_to_story=extended,
                origin={"city": brief.city, "section": brief.section, "language": terms.language},
            )
        touched = list(dict.fromkeys(a.topic for a in alerts))
        record = {"t": timestamp, "story": story["id"], "alerts": touched}
        if not extended:
            # Its alerts may have been lost with the crash: send them again as they stand.
            result = self._replay(brief, story["id"], [] if late else [*touched, *terms.topics], timestamp)
            result.alerts = [*alerts, *(a for a in result.alerts if a.topic not in touched)]
        else:
            result = EngineResult(self._story(story, brief.id, opened, timestamp, assignment.merged), alerts)
        result.brief_id, result.record, result.late = brief.id, record, late
        return result

    def mark_processed(self, result: EngineResult) -> None:
        """Remember that the brief of ``result`` (from :meth:`apply`) is done, so a replay changes nothing.

        The mark is held with the rest of its batch until ``state.processed.apply()``.
        """
        if result.record is not None:
            self.state.processed.hold(result.brief_id, result.record)

    def _replay(self, brief: ClusterInput, story_id: str, topics: list[str], timestamp: float) -> EngineResult:
        story = self.state.stories.get(story_id)
        alerts = [alert for topic in dict.fromkeys(topics) if (alert := self.spikes.current(topic, timestamp)) is not None]
        result_story = self._story(story, brief.id, False, timestamp) if story else None
        return EngineResult(result_story, alerts, replayed=True, brief_id=brief.id)

    def _forget_processed(self, watermark: float) -> None:
        self.state.processed.forget_before(self.spikes.kept_since(watermark))

    def _story(self, story: dict, brief_id: str, opened: bool, timestamp: float, merged: Sequence[str] = ()) -> Story:
        window_count = max(w.count for w in self.state.story_counts.counts(story["id"], timestamp))
        tags = Clusterer.tags(story)
        return Story(
            id=story["id"],
            title=Clusterer.title(story),
            tags=tags,
            label=Clusterer.label(story, tags=tags),
            topics=story["topics"],
            top_terms=[term for term, _ in heaviest(story["centroid"], 10)],
            brief_ids=story["brief_ids"],
            brief_count=story["count"],
            first_seen=_utc(story["first_seen"]),
            last_seen=_utc(story["last_seen"]),
            window_count=window_count,
            samples=story["samples"],
            opened=opened,
            brief_id=brief_id,
            merged_story_ids=list(merged),
        )


def create_engine(settings, state: EngineState | None = None) -> StoryEngine:
    """The engine that ``settings`` (a :class:`~wirewatch.settings.Settings`) describe."""
    from .terms import AliasTable, LanguageDetector

    detector, clustering = settings.detector_config(), settings.cluster_config()
    extractor = TermExtractor(AliasTable.default(settings.aliases_file), LanguageDetector(settings.language_codes()))
    encoder = default_encoder(clustering.embedding_dimensions) if clustering.embedding_weight > 0 else None
    return StoryEngine(extractor, detector, clustering, state or EngineState.in_memory(detector), encoder)
