"""Briefs → stories and alerts: term extraction, clustering, window counts and spike detection in one step.

:class:`StoryEngine` is what the worker's ``track_stories`` agent and the
offline ``wirewatch cluster`` command both run, one brief at a time in event
order. Its state sits in mappings and :class:`~wirewatch.windows.WindowCounts`
handed to it: Faust tables in the worker, dicts and
:class:`~wirewatch.windows.HoppingCounts` offline.

Alerting
--------
- A topic named in the brief is evaluated on the busiest window that contains
  the brief (earliest on ties) by :class:`~wirewatch.spikes.SpikeDetector`.
- Several topics spiking in one brief are one spike: the most surprising
  topic (then the rarer name) carries the alert, the others are listed as
  ``related_topics`` and share its cooldown. A topic spiking in a story that
  already has an active alert joins that alert instead of raising its own.
- While an alert is active (``cooldown`` seconds of event time after it was
  raised) more briefs revise it under the same id; a count that reaches
  ``escalation_factor`` times the count it was raised with raises an
  escalation with a new id.
- Ids derive from topic, window and escalation level: replays give the same ids.
Pure Python: no Kafka, no Faust.
"""

from __future__ import annotations

import hashlib
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .clustering import ClusterConfig, Clusterer
from .models import Alert, ClusterInput, Story
from .spikes import DetectorConfig, Evaluation, SpikeDetector, TopicHistory
from .terms import TermExtractor, term_rarity
from .windows import HoppingCounts, HoppingWindows, WindowCounts

__all__ = ["EngineState", "EngineResult", "StoryEngine", "create_engine", "alert_id"]

_SEVERITIES = ("medium", "high", "critical")


@dataclass
class EngineState:
    """Everything the engine remembers between briefs."""

    stories: MutableMapping[str, dict]
    topic_history: MutableMapping[str, dict]
    alerts: MutableMapping[str, dict]
    stream: MutableMapping[str, float]
    topic_counts: WindowCounts
    story_counts: WindowCounts

    @classmethod
    def in_memory(cls, config: DetectorConfig) -> "EngineState":
        windows = HoppingWindows(config.window_size, config.window_step)
        retain = config.window_size * 2
        return cls({}, {}, {}, {}, HoppingCounts(windows, retain), HoppingCounts(windows, retain))


@dataclass
class EngineResult:
    story: Story
    alerts: list[Alert] = field(default_factory=list)


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)


def alert_id(topic: str, window_start: float, escalation: int) -> str:
    digest = hashlib.blake2b(f"{topic}\x1f{window_start:.0f}\x1f{escalation}".encode(), digest_size=8).hexdigest()
    return f"alert-{digest}"


def topic_zipf(topic: str, language: str | None) -> float:
    return 8.0 - term_rarity(topic, language)


class StoryEngine:
    def __init__(
        self,
        extractor: TermExtractor,
        detector: DetectorConfig,
        clustering: ClusterConfig,
        state: EngineState,
    ) -> None:
        self.extractor = extractor
        self.config = detector
        self.detector = SpikeDetector(detector)
        self.clusterer = Clusterer(clustering, state.stories)
        self.state = state

    def process(self, brief: ClusterInput) -> EngineResult:
        state, config = self.state, self.config
        timestamp = brief.published_at.timestamp()
        terms = self.extractor.extract(brief.text, headline=brief.headline, language=brief.language)
        observed_since = min(state.stream.get("observed_since", timestamp), timestamp)
        watermark = max(state.stream.get("watermark", timestamp), timestamp)
        state.stream["observed_since"] = observed_since
        state.stream["watermark"] = watermark

        self.clusterer.expire(watermark)
        story, opened, _ = self.clusterer.assign(brief.id, terms, timestamp, brief.headline or brief.text)
        state.story_counts.add(story["id"], timestamp)
        story_window = max(w.count for w in state.story_counts.counts(story["id"], timestamp))

        evaluations: list[Evaluation] = []
        for topic in terms.topics:
            state.topic_counts.add(topic, timestamp)
            history = TopicHistory.from_dict(state.topic_history.get(topic))
            history.add(timestamp, brief.id, story["id"], keep=config.window_size * 2, decay_time=config.decay_time)
            state.topic_history[topic] = history.to_dict()
            busiest = max(state.topic_counts.counts(topic, timestamp), key=lambda w: (w.count, -w.start))
            evaluations.append(
                self.detector.evaluate(
                    topic,
                    busiest.start,
                    busiest.end,
                    busiest.count,
                    history,
                    observed_since,
                    topic_zipf(topic, terms.language),
                )
            )
        alerts = self._alerts(evaluations, story, timestamp, terms.language)
        result_story = Story(
            id=story["id"],
            label=Clusterer.label(story),
            topics=story["topics"],
            top_terms=list(story["centroid"])[:10],
            brief_ids=story["brief_ids"],
            brief_count=story["count"],
            first_seen=_utc(story["first_seen"]),
            last_seen=_utc(story["last_seen"]),
            window_count=story_window,
            samples=story["samples"],
            opened=opened,
            brief_id=brief.id,
        )
        return EngineResult(result_story, alerts)

    def _active(self, topic: str, timestamp: float) -> dict | None:
        record = self.state.alerts.get(topic)
        if record and abs(timestamp - record["raised_at"]) < self.config.cooldown:
            return record
        return None

    def _alerts(self, evaluations: list[Evaluation], story: dict, timestamp: float, language: str | None) -> list[Alert]:
        touched: list[str] = []  # topics whose alert changed, emitted once each at the end
        candidates = [e.topic for e in evaluations] + ([story["alert_topic"]] if story.get("alert_topic") else [])
        before = {topic: self.state.alerts.get(topic) for topic in candidates}
        fresh: list[Evaluation] = []
        for evaluation in evaluations:
            record = self._active(evaluation.topic, timestamp)
            if record is None:
                if evaluation.is_spike:
                    fresh.append(evaluation)
            elif record.get("covered_by") is None and evaluation.count > record["count"]:
                self._revise(evaluation.topic, record, evaluation)
                touched.append(evaluation.topic)
        if fresh:
            touched.append(self._raise(fresh, story, timestamp, language))
        alerts = []
        for topic in dict.fromkeys(touched):
            record = self.state.alerts[topic]
            previous = before.get(topic)
            if previous is not None and previous.get("id") == record["id"]:
                record = {**record, "revision": previous["revision"] + 1}
                self.state.alerts[topic] = record
            alerts.append(self._emit(topic, record, timestamp))
        return alerts

    def _raise(self, fresh: list[Evaluation], story: dict, timestamp: float, language: str | None) -> str:
        """Raise one alert for topics spiking together, or fold them into the story's active alert."""
        story_alert = story.get("alert_topic")
        owner = self._active(story_alert, timestamp) if story_alert else None
        if owner is not None and owner.get("covered_by") is None:
            record = dict(owner)
            record["related"] = sorted(set(record["related"]) | {e.topic for e in fresh})
            self.state.alerts[story_alert] = record
            self._cover([e.topic for e in fresh], story_alert, timestamp)
            return story_alert
        fresh = sorted(fresh, key=lambda e: (-e.score, topic_zipf(e.topic, language), e.topic))
        lead, others = fresh[0], fresh[1:]
        self.state.alerts[lead.topic] = {
            "id": alert_id(lead.topic, lead.window_start, 0),
            "raised_at": timestamp,
            "first_count": lead.count,
            "count": lead.count,
            "revision": 1,
            "escalation": 0,
            "window_start": lead.window_start,
            "window_end": lead.window_end,
            "baseline": lead.baseline,
            "score": lead.score,
            "related": sorted(e.topic for e in others),
            "story_id": story["id"],
        }
        self._cover([e.topic for e in others], lead.topic, timestamp)
        story_record = dict(self.state.stories[story["id"]])
        story_record["alert_topic"] = lead.topic
        self.state.stories[story["id"]] = story_record
        return lead.topic

    def _cover(self, topics: list[str], owner: str, timestamp: float) -> None:
        for topic in topics:
            self.state.alerts[topic] = {"covered_by": owner, "raised_at": timestamp}

    def _revise(self, topic: str, record: dict, evaluation: Evaluation) -> None:
        record = dict(record)
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
        )
        self.state.alerts[topic] = record

    def _emit(self, topic: str, record: dict, timestamp: float) -> Alert:
        history = TopicHistory.from_dict(self.state.topic_history.get(topic))
        mentions = history.mentions_between(record["window_start"], record["window_end"])
        story_ids = sorted({story_id for _, _, story_id in mentions} | {record["story_id"]})
        story = self.state.stories.get(record["story_id"])
        label = Clusterer.label(story) if story else topic
        sensitivity = self.config.sensitivity
        level = 2 if record["score"] >= 3 * sensitivity else 1 if record["score"] >= 2 * sensitivity else 0
        severity = _SEVERITIES[min(level + record["escalation"], len(_SEVERITIES) - 1)]
        return Alert(
            id=record["id"],
            revision=record["revision"],
            topic=topic,
            label=label,
            related_topics=record["related"],
            story_ids=story_ids,
            window_start=_utc(record["window_start"]),
            window_end=_utc(record["window_end"]),
            count=record["count"],
            baseline=round(record["baseline"], 6),
            score=round(record["score"], 3),
            severity=severity,
            escalation=record["escalation"],
            brief_ids=[brief_id for _, brief_id, _ in mentions],
            samples=story["samples"] if story else [],
            detected_at=_utc(timestamp),
        )


def create_engine(settings, state: EngineState | None = None) -> StoryEngine:
    """The engine that ``settings`` (a :class:`~wirewatch.settings.Settings`) describe."""
    from .terms import AliasTable, LanguageDetector

    detector = settings.detector_config()
    extractor = TermExtractor(AliasTable.default(settings.aliases_file), LanguageDetector(settings.language_codes()))
    return StoryEngine(extractor, detector, settings.cluster_config(), state or EngineState.in_memory(detector))
