"""The story stage past one partition, simulated: briefs routed to N independent engines, stories linked across them.

The worker's story stage reads one partition so that every brief can join
every story. Past one core that must change; ``docs/scaling.md`` designs how,
and this module measures the design offline on real labelled streams before
any of it is built into the worker.

Routing (``by``), as the briefs stage would key the story input:

- ``term``: the brief's heaviest term (a name or rare word, as the clusterer
  weighs them) owns it, in the hope that briefs of one story meet in one
  shard. Measured, it is the worst of the three: a shard gets every brief
  whose strongest word is the same and merges unrelated stories on it.
- ``language``: the brief's language. Stories rarely cross languages, but one
  language may carry most of the feed, and that shard takes most of the load.
- ``brief``: the brief id's hash, as a topic keyed by brief id would spread
  it: the load is even and a story's briefs land everywhere (the floor).

Linking: a story's briefs that land in other shards open stories there. When
a story reaches a size that is a power of two, as the clusterer's own merge
check does, a coordinator asks every other shard for a story it has converged
with (:meth:`~wirewatch.core.clustering.Clusterer.converged_with`) and links
the two; linked stories are one story to the desk (a union of ids), while
each shard keeps its own. Each engine's CPU time is kept apart, so the
busiest shard's time says what N workers would sustain. Pure Python.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from ..core.clustering import cosine
from ..core.engine import EngineResult, StoryEngine, create_engine
from ..models import ClusterInput
from ..settings import Settings

__all__ = ["SHARD_KEYS", "Link", "ShardedStories", "shard_of"]

SHARD_KEYS = ("term", "language", "brief")


def shard_of(key: str, shards: int) -> int:
    """A stable shard for ``key`` (the same in every process, unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % shards


@dataclass(frozen=True)
class Link:
    """Two stories found to be one, in one shard (a merge) or across two: ``story_id`` is shown as ``into`` from now on."""

    story_id: str
    into: str


@dataclass
class ShardedStories:
    """N story engines behind a router, and a coordinator that links their stories."""

    settings: Settings
    shards: int
    by: str = "term"
    engines: list[StoryEngine] = field(init=False)
    engine_seconds: list[float] = field(init=False)
    briefs: list[int] = field(init=False)
    link_similarity: float | None = None
    coordinator_seconds: float = 0.0
    _root: dict[str, str] = field(init=False, default_factory=dict)
    #: root → {story id: shard} of the stories shown as it
    _members: dict[str, dict[str, int]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.by not in SHARD_KEYS:
            raise ValueError(f"shard by one of {', '.join(SHARD_KEYS)}, not {self.by!r}")
        if self.shards < 1:
            raise ValueError("at least one shard")
        self.engines = [create_engine(self.settings) for _ in range(self.shards)]
        self.engine_seconds = [0.0] * self.shards
        self.briefs = [0] * self.shards

    def route(self, brief: ClusterInput) -> int:
        """The shard ``brief`` goes to."""
        if self.shards == 1:
            return 0
        if self.by == "brief":
            return shard_of(brief.id, self.shards)
        terms = self.engines[0].extractor.extract(brief.text, headline=brief.headline, language=brief.language)
        if self.by == "language":
            return shard_of(terms.language or "", self.shards)
        owner = max(terms.weights.items(), key=lambda item: (item[1], item[0]), default=(brief.id, 0.0))[0]
        return shard_of(owner, self.shards)

    def process(self, brief: ClusterInput) -> tuple[int, EngineResult, list[Link]]:
        """Route and cluster ``brief``; return its shard, the engine's result and the links it made.

        Links join roots (:meth:`shown_as`): a shard's own merges are links
        too, so the links in order always form a forest of story ids.
        """
        shard = self.route(brief)
        engine = self.engines[shard]
        started = time.process_time()
        result = engine.process(brief)
        self.engine_seconds[shard] += time.process_time() - started
        self.briefs[shard] += 1
        self._members.setdefault(self.shown_as(result.story.id), {})[result.story.id] = shard
        links: list[Link] = []
        for absorbed in result.story.merged_story_ids:
            links += self._join(absorbed, result.story.id)
        story = engine.clusterer.stories.get(result.story.id)
        count = story["count"] if story else 0
        if self.shards > 1 and count > 1 and count & (count - 1) == 0:
            started = time.process_time()
            links += self._link(shard, story)
            self.coordinator_seconds += time.process_time() - started
        return shard, result, links

    def _link(self, shard: int, story: dict) -> list[Link]:
        engine, links = self.engines[shard], []
        for other in self.engines:
            if other is engine:
                continue
            found = other.clusterer.converged_with(story, self.link_similarity)
            # Only stories that choose each other, and only groups that still read as one story: links chain
            # (a union), and pairwise choices alone chained unrelated stories through a third into one.
            if (
                found is not None
                and engine.clusterer.converged_with(other.clusterer.stories[found], self.link_similarity) == story["id"]
                and self._groups_agree(self.shown_as(story["id"]), self.shown_as(found))
            ):
                links += self._join(found, story["id"])
        return links

    def _group_centroid(self, root: str) -> dict[str, float]:
        centroid: dict[str, float] = {}
        for story_id, shard in self._members.get(root, {}).items():
            story = self.engines[shard].clusterer.stories.get(story_id)
            for term, weight in (story["centroid"] if story else {}).items():
                centroid[term] = centroid.get(term, 0.0) + weight
        return centroid

    def _groups_agree(self, left: str, right: str) -> bool:
        if left == right:
            return False
        bar = self.engines[0].clusterer.config.merge_similarity if self.link_similarity is None else self.link_similarity
        return cosine(self._group_centroid(left), self._group_centroid(right)) >= bar

    def shown_as(self, story_id: str) -> str:
        """The id the desk sees for ``story_id``: the root of its linked stories."""
        while story_id in self._root:
            story_id = self._root[story_id]
        return story_id

    def parallel_briefs_per_second(self) -> float:
        """Briefs per second with every shard on a core of its own: the busiest shard sets the pace."""
        busiest = max(self.engine_seconds)
        return sum(self.briefs) / busiest if busiest > 0 else 0.0

    def _join(self, story_id: str, other_id: str) -> list[Link]:
        # Union by size (briefs in the group): the root of the smaller group is linked into the larger's.
        left, right = self.shown_as(story_id), self.shown_as(other_id)
        if left == right:
            return []
        if (self._size(left), right) > (self._size(right), left):
            left, right = right, left
        self._root[left] = right
        self._members.setdefault(right, {}).update(self._members.pop(left, {}))
        return [Link(left, right)]

    def _size(self, root: str) -> int:
        return sum(self.engines[shard].clusterer.stories.get(story_id, {}).get("count", 0)
                   for story_id, shard in self._members.get(root, {}).items())
