"""raw → brief candidates → briefs: the agents ``split_pages`` and ``deduplicate_briefs``."""

from __future__ import annotations

import asyncio
import logging
import time

import faust
from faust.types import TableT

from ..core.pipeline import (
    FirstSightings,
    RecentIds,
    bare_page_source,
    dead_letter,
    in_event_order,
    read_brief,
    split_record,
)
from ..models import DeadLetter
from ..service.metrics import Metrics
from ..settings import Settings
from .topics import STORY_SHARD_KEY, Topics, dead_letter_publisher, raw_record

__all__ = ["declare_brief_stages"]

log = logging.getLogger(__name__)


def declare_brief_stages(app: faust.App, settings: Settings, metrics: Metrics, topics: Topics) -> dict[str, TableT]:
    """raw → brief candidates → briefs: the agents ``split_pages`` and ``deduplicate_briefs``; returns their tables."""
    raw_topic, candidates_topic, briefs_topic = topics.raw, topics.candidates, topics.briefs
    story_input_topic = topics.story_input
    first_seen = app.Table(
        "brief-first-seen",
        key_type=str,
        partitions=settings.topic_partitions,
        help="Brief id → [fetched_at, partition, offset, recorded_at] of the candidate that first carried it.",
    )
    sightings = FirstSightings(first_seen, settings.brief_id_retention_seconds, remember=settings.recent_brief_ids)

    publish_dead_letter = dead_letter_publisher(metrics, topics.dead_letters)

    # Snapshots of a page repeat most of its briefs. An id this worker has
    # forwarded is on its way to the table already (the producer is flushed
    # before the raw offset that carried it is committed, and a crash empties
    # this memory along with unflushed sends), so repeats need not cross Kafka.
    forwarded = RecentIds(settings.recent_brief_ids)

    @app.on_partitions_revoked.connect
    async def forget_forwarded(sender, revoked, **kwargs) -> None:
        # A rebalance re-reads what was not committed; rely on nothing sent before it.
        forwarded.clear()
        # The partitions' entries change hands and are recovered anew.
        sightings.reload()

    repeats_at_split = metrics.duplicate_briefs.labels("split")

    @app.agent(raw_topic, name="split_pages")
    async def split_pages(stream: faust.StreamT) -> None:
        """Split every raw page into brief candidates, or dead-letter it."""
        async for event in stream.events():
            record = raw_record(event)
            started = time.perf_counter()
            try:
                outcome = split_record(
                    record,
                    max_page_bytes=settings.max_page_bytes,
                    dead_letter_max_original_bytes=settings.dead_letter_max_original_bytes,
                    max_briefs_per_page=settings.max_briefs_per_page,
                    parse_budget_seconds=settings.parse_budget_seconds,
                    # Repeats are dropped unbuilt: most of a snapshot was forwarded with an earlier one.
                    keep=lambda brief_id: brief_id not in forwarded,
                )
            except Exception as error:  # a parser bug must not stop the stream
                log.exception("split_pages: unexpected error at %s/%s", record.partition, record.offset)
                letter = dead_letter(
                    record,
                    "internal_error",
                    f"{type(error).__name__}: {error}",
                    max_original_bytes=settings.dead_letter_max_original_bytes,
                )
                await publish_dead_letter(letter, record.key)
                continue
            metrics.parse_duration.observe(time.perf_counter() - started)
            source = metrics.source_label(outcome.envelope.source if outcome.envelope else bare_page_source(record))
            metrics.raw_messages.labels(source).inc()
            metrics.raw_bytes.labels(source).inc(len(record.value or b""))
            for letter in outcome.dead_letters:
                await publish_dead_letter(letter, record.key)
            repeats = outcome.left_out
            for brief in in_event_order(outcome.briefs):
                if not forwarded.add(brief.id):  # a page that repeats a brief of its own
                    repeats += 1
                    continue
                await candidates_topic.send(
                    key=brief.id.encode(),
                    value=brief.model_dump_json().encode(),
                    timestamp=brief.event_time.timestamp(),
                    force=True,
                )
            repeats_at_split.inc(repeats)
            await asyncio.sleep(0)

    @app.agent(candidates_topic, name="deduplicate_briefs")
    async def deduplicate_briefs(stream: faust.StreamT) -> None:
        """Forward each brief id once: the first snapshot that carries it wins.

        The table remembers which candidate record was first, for
        ``brief_id_retention_seconds`` of fetch time. Reading that very record
        again means the worker crashed after recording it and before
        committing its offset, when the brief may not have been published: it
        is published again (at least once), never dropped.
        """
        async for event in stream.events():
            brief = read_brief(raw_record(event), max_original_bytes=settings.dead_letter_max_original_bytes)
            if isinstance(brief, DeadLetter):
                await publish_dead_letter(brief, event.key)
                continue
            first = sightings.sight(brief.id, partition=event.message.partition,
                                    offset=event.message.offset, fetched_at=brief.fetched_at.timestamp())
            if not first:
                metrics.duplicate_briefs.labels("deduplicate").inc()
                continue
            await briefs_topic.send(key=brief.id.encode(), value=event.value, timestamp=event.message.timestamp, force=True)
            await story_input_topic.send(
                key=STORY_SHARD_KEY, value=event.value, timestamp=event.message.timestamp, force=True
            )
            now = time.time()
            metrics.briefs_emitted.labels(metrics.section_label(brief.section), brief.kind).inc()
            metrics.processing_lag.observe(max(now - brief.fetched_at.timestamp(), 0.0))
            if brief.published_at is not None:
                metrics.event_lag.observe(max(now - brief.published_at.timestamp(), 0.0))

    return {"brief-first-seen": first_seen}
