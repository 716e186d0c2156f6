"""Online story clustering: each brief joins the most similar active story or opens a new one.

A story is the sum of its briefs' term vectors (topics and lemmas weighted by
rarity, see :mod:`wirewatch.terms`), cut to its ``max_terms`` heaviest terms.
A brief joins the story with the highest cosine similarity when it reaches
``similarity`` and the story was active within ``ttl`` seconds of the brief;
stories not extended for ``ttl`` seconds of event time expire. Candidate
stories are scanned in id order and ties go to the smaller id, so the same
briefs in the same order always give the same stories.

State lives in a mapping of story id → plain dict, which the worker backs with
a changelog-backed Faust table and offline commands with a dict. Pure Python.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from dataclasses import dataclass

from .terms import BriefTerms

__all__ = ["ClusterConfig", "Clusterer", "cosine"]


@dataclass(frozen=True)
class ClusterConfig:
    similarity: float = 0.25
    ttl: float = 6 * 3600.0
    max_terms: int = 60
    max_brief_ids: int = 500
    max_samples: int = 3


def cosine(
    left: dict[str, float], right: dict[str, float], left_norm: float | None = None, right_norm: float | None = None
) -> float:
    """Cosine similarity of two term vectors; known norms spare recomputing them for vectors compared often."""
    small, large = (left, right) if len(left) <= len(right) else (right, left)
    dot = sum(weight * large.get(term, 0.0) for term, weight in small.items())
    if dot == 0.0:
        return 0.0
    return dot / ((left_norm or _norm(left)) * (right_norm or _norm(right)))


def _norm(vector: dict[str, float]) -> float:
    return math.sqrt(sum(w * w for w in vector.values()))


class Clusterer:
    """Assigns briefs to stories held in ``stories``."""

    def __init__(self, config: ClusterConfig, stories: MutableMapping[str, dict]) -> None:
        self.config = config
        self.stories = stories

    def expire(self, watermark: float) -> list[str]:
        """Drop stories not extended within ``ttl`` of ``watermark``; return their ids."""
        expired = [sid for sid, story in self.stories.items() if story["last_seen"] < watermark - self.config.ttl]
        for story_id in expired:
            del self.stories[story_id]
        return sorted(expired)

    def assign(
        self, brief_id: str, terms: BriefTerms, timestamp: float, sample: str
    ) -> tuple[dict, bool, bool]:
        """Put the brief in a story; return (story, opened, extended).

        ``extended`` is false when the chosen story already holds the brief (it
        was assigned before a crash and read again): the story is left as it is.
        """
        best_id, best_similarity = None, 0.0
        brief_norm = _norm(terms.weights)
        for story_id in sorted(self.stories.keys()):
            story = self.stories[story_id]
            if abs(timestamp - story["last_seen"]) > self.config.ttl and not (
                story["first_seen"] <= timestamp <= story["last_seen"]
            ):
                continue
            # Stories stored before "norm" was kept get it computed.
            similarity = cosine(terms.weights, story["centroid"], brief_norm, story.get("norm"))
            if similarity > best_similarity:
                best_id, best_similarity = story_id, similarity
        if best_id is not None and best_similarity >= self.config.similarity:
            story = dict(self.stories[best_id])
            opened = False
            if brief_id in story["brief_ids"]:
                return story, False, False
        else:
            story = {
                "id": f"story-{brief_id}",
                "centroid": {},
                "topics": {},
                "brief_ids": [],
                "samples": [],
                "first_seen": timestamp,
                "last_seen": timestamp,
                "count": 0,
            }
            opened = True
        self._extend(story, brief_id, terms, timestamp, sample)
        # Assigning a new dict (not mutating the stored one) is what makes a
        # Faust table write the change to its changelog.
        self.stories[story["id"]] = story
        return story, opened, True

    def _extend(self, story: dict, brief_id: str, terms: BriefTerms, timestamp: float, sample: str) -> None:
        centroid = dict(story["centroid"])
        for term, weight in terms.weights.items():
            centroid[term] = centroid.get(term, 0.0) + weight
        heaviest = sorted(centroid.items(), key=lambda item: (-item[1], item[0]))[: self.config.max_terms]
        story["centroid"] = dict(heaviest)
        story["norm"] = _norm(story["centroid"])
        topics = dict(story["topics"])
        for topic in terms.topics:
            topics[topic] = topics.get(topic, 0) + 1
        story["topics"] = topics
        story["brief_ids"] = [*story["brief_ids"], brief_id][-self.config.max_brief_ids :]
        story["count"] = story["count"] + 1
        if len(story["samples"]) < self.config.max_samples:
            story["samples"] = [*story["samples"], sample[:280]]
        story["first_seen"] = min(story["first_seen"], timestamp)
        story["last_seen"] = max(story["last_seen"], timestamp)

    @staticmethod
    def label(story: dict, limit: int = 3) -> str:
        """The story's most frequent topics, or its heaviest terms when it has none."""
        topics = sorted(story["topics"].items(), key=lambda item: (-item[1], item[0]))
        names = [name for name, _ in topics[:limit]]
        if not names:
            names = list(story["centroid"])[:limit]
        return " · ".join(names)
