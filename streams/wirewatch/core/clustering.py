"""Online story clustering: each brief joins the most similar live story or opens a new one.

The model
---------
A brief is its term vector (topics and content words weighted by rarity, see
:mod:`wirewatch.core.terms`), scaled to unit length. A story is the sum of its
briefs' unit vectors, cut to its ``max_terms`` heaviest terms. A brief's
affinity to a story is the cosine of the two, damped by how long the story
has been quiet::

    affinity = cosine(brief, story) · exp(−gap / max(time_scale, span))

where ``gap`` is the distance from the brief's event time to the story's span
of briefs (0 inside it) and ``span`` the story's own length, from its first
brief to its newest. A story keeps its own clock: one that has run for three
days (an earthquake, a war) forgives a day without a brief, one whose briefs
all came within an hour (a match, a product launch) is damped within hours,
and a new story gets ``time_scale`` (6 h). The brief joins the story of highest affinity when it
reaches its threshold; otherwise it opens ``story-<brief id>``. The threshold
is ``similarity`` for a brief of up to ``reference_terms`` terms (a headline,
a tweet) and grows with the square root of its number of terms beyond that:
a brief of n terms meets an unrelated story's words by chance about as often
as n of them are drawn, each weighing 1/√n in the unit vector, so chance
affinity grows as √n. A long wire brief must share more than a tweet to join. A story that
has had no brief for ``ttl`` seconds of event time expires, so a story lives as
long as it keeps getting briefs: days for an earthquake, an hour for a goal.

Headlines of one story often share no rare word at all. With an encoder
(:mod:`wirewatch.core.embedding`), a brief also carries a short vector of
what it means, and a story the sum of its briefs' vectors. The
``embedding_candidates`` stories of highest affinity then score::

    affinity + min(embedding_weight · max(0, meaning cosine − embedding_floor),
                   embedding_share · bar) · damping

(for a brief in one of ``embedding_languages``, those the model was trained
on) so wordings that share little but mean the same join: a meaning cosine
below the floor (that of unrelated texts on a news wire) adds nothing, and
meaning supplies at most ``embedding_share`` (half) of the bar a brief must
reach; shared words supply the rest. Two stories of one kind (two HBO series,
two storms) are close in meaning but name different things: without the cap
they ran together.

Short texts of one story share few words, so early on a story often opens
twice (two agencies' first wordings). Whenever a story reaches a size that is
a power of two it is compared with the live stories that share its heaviest
terms, and merged into one whose affinity (the same formula, story against
story) reaches ``merge_similarity``: the larger absorbs the smaller. With an
encoder, their meanings must also be ``merge_meaning_floor`` close: stories
around one place or one festival come to share their heaviest words (Snowden's
talk at SXSW and the festival's bands) while they say different things.

Cost per brief does not grow with the number of live stories: stories are
found through an inverted index term → stories, kept in memory and derived
from the stories themselves (never stored), so that a brief is compared only
with stories that share a term with it. A story sharing no term scores 0 and
could never be chosen, so the index changes no outcome: the same briefs in the
same order always give the same stories, ties going to the smaller id.

State lives in a mapping of story id → plain dict, which the worker backs with
a changelog-backed Faust table and offline commands with a dict. Pure Python.
"""

from __future__ import annotations

import base64
import heapq
import math
import re
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass

import numpy as np

from .embedding import SentenceEncoder, unit_length
from .terms import BriefTerms

__all__ = ["Assignment", "ClusterConfig", "Clusterer", "cosine", "heaviest"]


@dataclass(frozen=True)
class ClusterConfig:
    similarity: float = 0.05
    reference_terms: int = 10
    merge_similarity: float = 0.12
    time_scale: float = 6 * 3600.0
    ttl: float = 3 * 24 * 3600.0
    max_terms: int = 100
    max_topics: int = 30
    max_brief_ids: int = 500
    max_samples: int = 3
    merge_probe_terms: int = 20
    embedding_weight: float = 2.0
    embedding_floor: float = 0.25
    embedding_share: float = 0.5
    embedding_seed_briefs: int = 8
    embedding_candidates: int = 4
    embedding_dimensions: int = 128
    embedding_languages: tuple[str, ...] = ("en",)
    merge_meaning_floor: float = 0.35


@dataclass
class Assignment:
    """What putting one brief in a story did.

    ``extended`` is false when the chosen story already held the brief (it was
    assigned before a crash and read again): the story was left as it is.
    ``merged`` lists the stories the chosen one absorbed just now.
    """

    story: dict
    opened: bool
    extended: bool
    merged: list[str]


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


def heaviest(weights: dict, limit: int) -> list:
    """The ``limit`` heaviest (key, weight) pairs, heaviest first; ties in key order, so always the same."""
    if 0 < limit and 2 * limit < len(weights):
        # Every brief asks for a story's top terms: find the cut among bare floats first, then sort only the
        # pairs at or above it (ties at the cut included, so the order is that of the full sort).
        cut = heapq.nlargest(limit, weights.values())[-1]
        return sorted(((k, w) for k, w in weights.items() if w >= cut), key=_heaviest_first)[:limit]
    return sorted(weights.items(), key=_heaviest_first)[:limit]


def _heaviest_first(item: tuple) -> tuple:
    return -item[1], item[0]


def _gap(first: float, last: float, other_first: float, other_last: float) -> float:
    """Seconds between the spans [first, last] and [other_first, other_last]; 0 when they overlap."""
    return max(0.0, max(first, other_first) - min(last, other_last))


class Clusterer:
    """Assigns briefs to stories held in ``stories``."""

    def __init__(
        self, config: ClusterConfig, stories: MutableMapping[str, dict], encoder: SentenceEncoder | None = None
    ) -> None:
        self.config = config
        self.stories = stories
        self.encoder = encoder if config.embedding_weight > 0 else None
        # story id → (the stored sum it was worked out from, its unit meaning vector): derived, never stored.
        self._meanings: dict[str, tuple[str, np.ndarray]] = {}
        # term → ids of stories whose centroid holds it; may name stories that
        # are gone or no longer hold the term (they score what they hold), never misses one.
        self._index: dict[str, set[str]] = {}
        self._indexed = False

    def reindex(self) -> None:
        """Build the term index from the stories as stored: after a restart, a rebalance or writes undone."""
        index: dict[str, set[str]] = {}
        for story_id, story in self.stories.items():
            for term in story["centroid"]:
                index.setdefault(term, set()).add(story_id)
        self._index, self._indexed = index, True
        self._meanings.clear()

    def expire(self, watermark: float) -> list[str]:
        """Drop stories not extended within ``ttl`` of ``watermark``; return their ids."""
        expired = [sid for sid, story in self.stories.items() if story["last_seen"] < watermark - self.config.ttl]
        for story_id in expired:
            self._unindex(story_id, self.stories[story_id]["centroid"])
            self._meanings.pop(story_id, None)
            del self.stories[story_id]
        return sorted(expired)

    def assign(
        self, brief_id: str, terms: BriefTerms, timestamp: float, sample: str, *, headline: str | None = None,
        text: str | None = None,
    ) -> Assignment:
        """Put the brief in a story, merging stories that have converged.

        ``headline`` and ``text`` give the brief's candidate for the story's
        title (its headline, else its first sentence; ``sample`` when neither is given).
        """
        if not self._indexed:
            self.reindex()
        vector = _unit(terms.weights)
        # The model knows English: on Dutch wire briefs, different stories mean as alike as one story does.
        encoder = self.encoder if terms.language in self.config.embedding_languages else None
        encoded: list[np.ndarray | None] = []

        def meaning() -> np.ndarray | None:
            if not encoded:
                encoded.append(encoder.encode(headline or text or sample))
            return encoded[0]

        threshold = self.config.similarity * math.sqrt(max(len(vector), self.config.reference_terms)
                                                       / self.config.reference_terms)
        best_id, best_affinity = self._closest(vector, 1.0, timestamp, timestamp, exclude=None,
                                               meaning=meaning if encoder is not None else None, bar=threshold)
        if best_id is not None and best_affinity >= threshold:
            story = dict(self.stories[best_id])
            if brief_id in story["brief_ids"]:
                return Assignment(story, opened=False, extended=False, merged=[])
            opened = False
        else:
            story = {
                "id": f"story-{brief_id}",
                "centroid": {},
                "norm": 0.0,
                "topics": {},
                "brief_ids": [],
                "samples": [],
                "first_seen": timestamp,
                "last_seen": timestamp,
                "count": 0,
                "languages": {},
            }
            opened = True
        old_centroid = story["centroid"]
        self._add_vector(story, vector)
        # A story means what its first few briefs mean, and what those whose words left the choice open mean
        # (their meaning was worked out anyway): encoding every brief of a busy story would add nothing.
        if encoder is not None and story.get("embedded", 0) < self.config.embedding_seed_briefs:
            meaning()
        if encoded and encoded[0] is not None:
            self._add_meaning(story, encoded[0])
        self._add_topics(story, {topic: 1 for topic in terms.topics})
        story["brief_ids"] = [*story["brief_ids"], brief_id][-self.config.max_brief_ids :]
        story["count"] += 1
        if len(story["samples"]) < self.config.max_samples:
            story["samples"] = [*story["samples"], sample[:280]]
        story["first_seen"] = min(story["first_seen"], timestamp)
        story["last_seen"] = max(story["last_seen"], timestamp)
        if terms.language:
            self._add_languages(story, {terms.language: 1})
        self._consider_title(story, lambda: title_of(headline, text if text is not None else sample), vector,
                             terms.language)
        self._reindex_story(story["id"], old_centroid, story["centroid"])
        merged: list[str] = []
        if story["count"] & (story["count"] - 1) == 0 and story["count"] > 1:
            story, merged = self._merge_converged(story)
        # Assigning a new dict (not mutating the stored one) is what makes a
        # Faust table write the change to its changelog.
        self.stories[story["id"]] = story
        return Assignment(story, opened=opened, extended=True, merged=merged)

    def _closest(
        self, vector: dict[str, float], norm: float, first: float, last: float, exclude: str | None,
        meaning: Callable[[], np.ndarray | None] | None = None, bar: float = 0.0,
    ) -> tuple[str | None, float]:
        """The live story of highest affinity to ``vector`` spanning [first, last], and that affinity.

        With ``meaning`` (giving a unit vector from the encoder), the best few
        by term affinity are scored again with their meaning added, at most
        ``embedding_share`` of ``bar`` (the affinity the caller will ask for).
        ``meaning`` is called only when that could change the outcome.
        """
        index = self._index
        candidates: set[str] = set()
        for term in vector:
            holders = index.get(term)
            if holders:
                candidates |= holders
        candidates.discard(exclude)
        best_id, best_affinity = None, 0.0
        config, stories = self.config, self.stories
        most = config.embedding_share * bar
        # A story further than the largest bonus below the bar can neither reach it nor pass one that does.
        within_reach = bar - most if meaning is not None else math.inf
        ranked: list[tuple[float, str, float]] = []
        for story_id in sorted(candidates):
            story = stories.get(story_id)
            if story is None:
                continue
            gap = _gap(story["first_seen"], story["last_seen"], first, last)
            if gap > config.ttl:
                continue
            centroid = story["centroid"]
            dot = sum(weight * centroid.get(term, 0.0) for term, weight in vector.items())
            if dot <= 0.0:
                continue
            scale = max(config.time_scale, story["last_seen"] - story["first_seen"], last - first)
            damping = math.exp(-gap / scale)
            affinity = dot / (norm * story["norm"]) * damping
            if affinity > best_affinity:
                best_id, best_affinity = story_id, affinity
            if affinity >= within_reach:
                ranked.append((affinity, story_id, damping))
        if ranked:
            # Meaning is weighed only for the few stories the terms already point at: it decides between
            # them, and a brief is never compared with every live story.
            top = heapq.nsmallest(config.embedding_candidates, ranked, key=_most_affine)
            leader, leader_id, leader_damping = top[0]
            runners_up_reach = max((affinity + most * damping for affinity, _, damping in top[1:]), default=0.0)
            if leader >= bar:
                choice_open = runners_up_reach > leader  # a runner-up could pass the leader
            else:
                choice_open = max(runners_up_reach, leader + most * leader_damping) >= bar  # one could reach the bar
            if not choice_open:
                return leader_id, leader
            brief_meaning = meaning()
            for affinity, story_id, damping in top:
                story_meaning = self._meaning_of(story_id, stories[story_id])
                if story_meaning is not None and brief_meaning is not None:
                    closeness = float(brief_meaning @ story_meaning) - config.embedding_floor
                    if closeness > 0.0:
                        affinity += min(config.embedding_weight * closeness, most) * damping
                if affinity > best_affinity:
                    best_id, best_affinity = story_id, affinity
        return best_id, best_affinity

    def _meaning_of(self, story_id: str, story: dict) -> np.ndarray | None:
        """The unit meaning vector of a stored story (None for one that has none)."""
        stored = story.get("embedding")
        cached = self._meanings.get(story_id)
        if cached is not None and cached[0] is stored:
            return cached[1]
        unit = _unit_meaning(story)
        if unit is not None:
            self._meanings[story_id] = (stored, unit)
        return unit

    def _add_meaning(self, story: dict, meaning: np.ndarray, briefs: int = 1) -> None:
        """Add the meaning vector of a brief (or the sum of ``briefs`` of them, another story's) to the story's sum."""
        total = meaning + _unpack(story["embedding"]) if story.get("embedding") else meaning
        story["embedding"] = _pack(total)
        story["embedded"] = story.get("embedded", 0) + briefs

    def converged_with(self, story: dict, similarity: float | None = None) -> str | None:
        """The id of a live story here (``story`` itself aside) that ``story`` has converged with, if any.

        Converged: affinity at least ``similarity`` (default ``merge_similarity``), and, with an encoder, meanings
        at least ``merge_meaning_floor`` close.
        ``story`` may come from another clusterer: this is also how stories of
        different shards are linked (see :mod:`wirewatch.offline.sharding`).
        """
        config = self.config
        probe = dict(heaviest(story["centroid"], config.merge_probe_terms))
        unit = _unit_meaning(story) if self.encoder is not None else None
        # Score on the full centroid, found through its heaviest terms.
        bar = config.merge_similarity if similarity is None else similarity
        other_id, _ = self._closest(probe, _norm(probe), story["first_seen"], story["last_seen"], exclude=story["id"],
                                    meaning=(lambda: unit) if unit is not None else None, bar=bar)
        if other_id is None:
            return None
        other = self.stories[other_id]
        gap = _gap(story["first_seen"], story["last_seen"], other["first_seen"], other["last_seen"])
        affinity = cosine(story["centroid"], other["centroid"], story["norm"], other["norm"])
        scale = max(config.time_scale, story["last_seen"] - story["first_seen"], other["last_seen"] - other["first_seen"])
        if affinity * math.exp(-gap / scale) < bar:
            return None
        if unit is not None:
            other_meaning = self._meaning_of(other_id, other)
            if other_meaning is not None and float(unit @ other_meaning) < config.merge_meaning_floor:
                return None  # their words converged on what they share; what they say is still apart
        return other_id

    def _merge_converged(self, story: dict) -> tuple[dict, list[str]]:
        """Merge ``story`` with the live story it has converged with, if any; return the survivor and the absorbed."""
        config = self.config
        other_id = self.converged_with(story)
        if other_id is None:
            return story, []
        other = self.stories[other_id]
        # The larger story absorbs the smaller; of two the same size, the older id stays.
        if (-other["count"], other_id) < (-story["count"], story["id"]):
            keep, gone = dict(other), story
        else:
            keep, gone = story, other
        old_centroid = keep["centroid"]
        self._add_vector(keep, gone["centroid"])
        if gone.get("embedding"):
            self._add_meaning(keep, _unpack(gone["embedding"]), gone.get("embedded", 1))
        self._add_topics(keep, gone["topics"])
        held = set(keep["brief_ids"])
        keep["brief_ids"] = [*keep["brief_ids"], *(b for b in gone["brief_ids"] if b not in held)][-config.max_brief_ids :]
        keep["count"] += gone["count"]
        keep["samples"] = (keep["samples"] + gone["samples"])[: config.max_samples]
        keep["first_seen"] = min(keep["first_seen"], gone["first_seen"])
        keep["last_seen"] = max(keep["last_seen"], gone["last_seen"])
        self._add_languages(keep, gone.get("languages") or {})
        if gone.get("title"):
            text, vector, language = gone["title"]
            self._consider_title(keep, text, vector, language)
        self._unindex(gone["id"], gone["centroid"])
        self._reindex_story(keep["id"], old_centroid, keep["centroid"])
        self._meanings.pop(gone["id"], None)
        del self.stories[gone["id"]]
        return keep, [gone["id"]]

    def _consider_title(self, story: dict, text: Callable[[], str] | str, vector: dict[str, float],
                        language: str | None) -> None:
        """Make ``text`` the story's title if it has none, or if it is clearly more central than the title it has.

        Central: closest to the story's centroid. A title in the language most
        of its briefs use beats one in another. The title changes only by a
        clear margin, so that a wall screen does not flicker between two
        near-equal ones. ``text`` may be a function giving it: it is worked
        out only for a brief that wins (most do not).
        """
        current = story.get("title")
        if current is not None:
            languages = story.get("languages") or {}
            majority = max(languages, key=lambda name: (languages[name], name), default=None)
            fits, current_fits = language == majority, current[2] == majority
            if fits != current_fits and not fits:
                return
            if fits == current_fits:
                centroid, norm = story["centroid"], story["norm"]
                ahead = cosine(vector, centroid, _norm(vector), norm) - cosine(current[1], centroid, _norm(current[1]), norm)
                if ahead <= _TITLE_MARGIN:
                    return
        title = text() if callable(text) else text
        if title:
            kept = vector if len(vector) <= _TITLE_TERMS else dict(heaviest(vector, _TITLE_TERMS))
            story["title"] = [title, kept, language]

    def _add_vector(self, story: dict, vector: dict[str, float]) -> None:
        centroid = dict(story["centroid"])
        for term, weight in vector.items():
            centroid[term] = centroid.get(term, 0.0) + weight
        # Cut back to max_terms once it is half as long again, not at every brief: the sort is the cost.
        if len(centroid) > self.config.max_terms * 3 // 2:
            centroid = dict(heaviest(centroid, self.config.max_terms))
        story["centroid"] = centroid
        story["norm"] = _norm(centroid)

    def _add_topics(self, story: dict, topics: dict[str, int]) -> None:
        merged = dict(story["topics"])
        for topic, count in topics.items():
            merged[topic] = merged.get(topic, 0) + count
        if len(merged) > self.config.max_topics:
            merged = dict(heaviest(merged, self.config.max_topics))
        story["topics"] = merged

    @staticmethod
    def _add_languages(story: dict, counts: dict[str, int]) -> None:
        languages = dict(story.get("languages") or {})
        for language, count in counts.items():
            languages[language] = languages.get(language, 0) + count
        story["languages"] = languages

    def _reindex_story(self, story_id: str, old: dict, new: dict) -> None:
        """Index the story under the terms ``new`` has and ``old`` had not, and no longer under those it lost.

        The terms both share are indexed already: ``old`` is what the index was last told of the story.
        """
        index = self._index
        for term in old.keys() - new.keys():
            holders = index.get(term)
            if holders is not None:
                holders.discard(story_id)
                if not holders:
                    del index[term]
        for term in new.keys() - old.keys():
            index.setdefault(term, set()).add(story_id)

    def _unindex(self, story_id: str, terms: dict) -> None:
        self._reindex_story(story_id, terms, {})

    @staticmethod
    def title(story: dict) -> str:
        """The headline or first sentence of the story's most central brief (its label before any is known)."""
        return story["title"][0] if story.get("title") else Clusterer.label(story)

    @staticmethod
    def tags(story: dict, limit: int = 3) -> list[str]:
        """Up to ``limit`` names its briefs use most: people, places, organisations (topics, never plain words)."""
        return [name for name, _ in heaviest(story["topics"], limit)]

    @staticmethod
    def label(story: dict, limit: int = 3, tags: list[str] | None = None) -> str:
        """The story's most frequent topics (``tags``, when already worked out), or its heaviest terms when it has none."""
        names = tags if tags is not None else Clusterer.tags(story, limit)
        if not names:
            names = [term for term, _ in heaviest(story["centroid"], limit)]
        return " · ".join(names)


#: Terms of a title's brief kept to judge its centrality later (a headline's or a tweet's are all of them);
#: the margin a new title must win by.
_TITLE_TERMS, _TITLE_MARGIN = 24, 0.1
#: A title longer than this is cut at a word and ends in "…".
MAX_TITLE_CHARS = 140
_SENTENCE_END = re.compile(r"(?<=[^\s.!?]{2}[.!?])[\"”’')]*\s+(?=[\"“‘'(]*[A-ZÀ-ÞА-Я0-9])")


def title_of(headline: str | None, text: str | None) -> str:
    """A brief's candidate title: its headline, else the first sentence of its text, at most ``MAX_TITLE_CHARS``."""
    if headline and headline.strip():
        title = " ".join(headline.split())
    else:
        flat = " ".join((text or "").split())
        end = _SENTENCE_END.search(flat, 20)
        title = flat[: end.start()] if end else flat
    if len(title) > MAX_TITLE_CHARS:
        title = title[: MAX_TITLE_CHARS - 1].rsplit(" ", 1)[0].rstrip(",;:—–-") + "…"
    return title


def _most_affine(scored: tuple[float, str, float]) -> tuple[float, str]:
    return -scored[0], scored[1]


def _pack(total: np.ndarray) -> str:
    """A story's sum of meaning vectors as it is stored: base64 of half floats (344 characters at 128 dimensions).

    Half precision keeps about three digits, plenty for a direction; as a JSON list the sum took three times the room
    and doubled the story's row.
    """
    return base64.b64encode(total.astype(np.float16).tobytes()).decode("ascii")


def _unpack(stored: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(stored), dtype=np.float16).astype(np.float32)


def _unit_meaning(story: dict) -> np.ndarray | None:
    stored = story.get("embedding")
    return unit_length(_unpack(stored)) if stored else None


def _unit(weights: dict[str, float]) -> dict[str, float]:
    norm = _norm(weights)
    return {term: weight / norm for term, weight in weights.items()} if norm else {}
