"""What keeps a worker honest while it runs: consumer lag, stalled and stranded partitions, topics the
metadata lacks, and the desk page's feed; with the consumer's flow state for a person looking at a stall."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import faust
import orjson
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from ..core.progress import StallWatch
from ..service.desk import DeskView
from ..service.kafka import OffsetReader
from ..service.metrics import Metrics
from ..settings import Settings
from ..upstream.consumer import GuardedConsumer

__all__ = ["declare_watchdogs", "declare_desk_feed", "flow_state"]

#: How often the worker looks for subscribed topics the cluster metadata lacks (cheap: no request unless one is).
_MISSING_TOPICS_CHECK_SECONDS = 2.0

log = logging.getLogger(__name__)


def declare_watchdogs(app: faust.App, settings: Settings, metrics: Metrics, source_topics: frozenset[str]) -> StallWatch:
    """The timers that measure lag and rescue stalled or stranded partitions; returns the watch /health reads."""
    # Stalled: fetch again from the committed offsets. Still stuck as long again: /health says 503.
    stalls = StallWatch(settings.stall_seconds)
    stuck = StallWatch(2 * settings.stall_seconds)

    offsets = OffsetReader(settings, settings.group_id)

    @app.on_before_shutdown.connect
    async def close_offset_reader(sender, **kwargs) -> None:
        await offsets.close()

    @app.timer(settings.consumer_lag_interval_seconds)
    async def measure_consumer_lag() -> None:
        """Lag of each assigned source partition (its end offset minus the group's committed offset), then stalls."""
        # Only the topics agents consume are committed; changelog partitions are read, never committed.
        assigned = [(tp.topic, tp.partition) for tp in app.consumer.assigned(source_topics)]
        if not assigned:
            metrics.set_consumer_lag({})
            return
        try:
            ends, committed = await offsets.read(assigned)
        except (KafkaError, OSError) as error:
            # An exception escaping a Faust timer stops the whole worker; a missed
            # reading while the cluster is away does not matter.
            log.info("consumer lag not measured this round: %s", error)
            return
        metrics.set_consumer_lag({tp: max(ends[tp] - committed.get(tp, 0), 0) for tp in assigned})
        now = time.monotonic()
        newly_stalled = stalls.observe(now, ends, committed)
        newly_stuck = stuck.observe(now, ends, committed)
        metrics.stalled_partitions.set(len(stalls.stalled))
        if newly_stalled:
            await fetch_stalled_again(newly_stalled, committed)
        if newly_stuck:
            log.warning("still no progress on %s after fetching again; /health now says 503", sorted(newly_stuck))

    async def fetch_stalled_again(partitions: set[tuple[str, int]], committed: dict[tuple[str, int], int]) -> None:
        try:
            state = flow_state(app, partitions)
        except Exception as error:  # a diagnostic must not take the worker down
            state = {"unavailable": repr(error)}
        log.warning(
            "no progress for %.0f s on %s although records wait; fetching them again from the committed "
            "offsets. Consumer flow: %s",
            settings.stall_seconds, sorted(partitions), state,
        )
        # This has ended most stalls seen so far (a fetcher past dropped records, a commit held up by
        # offsets never acked), though not every one: those the liveness restart ends.
        for topic, partition in sorted(partitions):
            await app.consumer.seek(TopicPartition(topic, partition), committed.get((topic, partition), 0))

    stranded = StallWatch(settings.stranded_seconds)

    @app.timer(settings.stranded_seconds / 2)
    async def read_stranded_records_again() -> None:
        """Read a source partition again where records are stranded (see ``GuardedConsumer.stranded``).

        Sooner than the stall watch, which sees only that the group's committed offset stands still.
        """
        consumer = app.consumer
        if app.rebalancing or app.in_recovery:
            return
        found = consumer.stranded(source_topics)
        newly = stranded.observe(
            time.monotonic(),
            {partition: beyond for partition, (_, beyond, _) in found.items()},
            {partition: start for partition, (start, _, _) in found.items()},
        )
        for topic, partition in sorted(newly):
            start, beyond, how = found[(topic, partition)]
            log.warning("%s[%s]: records from offset %s stranded for %.0f s (%s; %s is further on); "
                        "reading again from %s", topic, partition, start, settings.stranded_seconds, how, beyond, start)
            metrics.stranded_reads.labels(topic).inc()
            await consumer.seek(TopicPartition(topic, partition), start)

    @app.timer(_MISSING_TOPICS_CHECK_SECONDS)
    async def ask_for_missing_topics() -> None:
        """Join again with every topic once the cluster knows them all (see ``GuardedConsumer.ask_for_missing_topics``)."""
        try:
            missing = await app.consumer.ask_for_missing_topics()
        except (KafkaError, OSError) as error:
            log.info("topic metadata not refreshed this round: %s", error)
            return
        if missing:
            log.warning("topics %s are not in the cluster metadata yet; asked the cluster again", ", ".join(missing))

    return stuck


def declare_desk_feed(app: faust.App, settings: Settings, desk: DeskView) -> None:
    """The task that feeds the desk page."""

    @app.task
    async def follow_desk() -> None:
        """Feed the desk page from every partition of the stories, alerts and briefs topics."""
        from ..service.kafka import follow_topics_forever

        handlers = {
            settings.topic_alerts: desk.on_alert,
            settings.topic_stories: desk.on_story,
            settings.topic_briefs: desk.on_brief,
        }
        async for topic, value in follow_topics_forever(
            settings, list(handlers), since_seconds=settings.story_ttl_seconds, reader="desk"
        ):
            try:
                handlers[topic](orjson.loads(value))
            except (orjson.JSONDecodeError, KeyError, TypeError):
                log.warning("desk: skipped an unreadable record on %s", topic)


def flow_state(app: faust.App, partitions: Iterable[tuple[str, int]] = ()) -> dict:
    """What Faust's consumer is doing: which partitions it fetches, pauses or holds back
    for full stream buffers, the buffers' sizes, and whether flow is stopped; and for each of
    ``partitions``, where Faust and the fetcher stand. For a stalled worker."""
    consumer = app.consumer
    names = lambda tps: sorted(f"{tp.topic}[{tp.partition}]" for tp in tps or ())  # noqa: E731
    return {
        "flow_active": consumer.flow_active,
        "flow_control_active": app.flow_control.is_active(),
        "in_recovery": app.in_recovery,
        "rebalancing": app.rebalancing,
        "assigned": names(consumer.assignment()),
        "active": names(getattr(consumer, "_active_partitions", None)),
        "paused": names(getattr(consumer, "_paused_partitions", None)),
        "held_for_full_buffers": names(getattr(consumer, "_buffered_partitions", None)),
        # (size, pressure-drop callbacks waiting) per stream buffer
        "stream_buffers": {
            str(topic): (queue.qsize(), len(queue._pending_pressure_drop_callbacks))
            for topic in list(app.topics._topics)
            if (queue := getattr(topic, "_queue", None)) is not None
        },
        "partitions": {f"{topic}[{partition}]": _partition_offsets(consumer, TopicPartition(topic, partition))
                       for topic, partition in partitions},
    }


def _partition_offsets(consumer: GuardedConsumer, tp: TopicPartition) -> dict:
    """Faust's read and committed offsets, its acked offsets not yet committed (how many, the lowest) and its
    gaps, the offset :class:`GuardedConsumer` hands on next, and the fetcher's position, pause and highwater for
    ``tp``; and whether fetched records of it wait to be taken. A commit waits while the lowest acked offset
    is above the committed one."""
    acked = consumer._acked.get(tp) or ()
    return {
        "read": consumer._read_offset.get(tp),
        "committed": consumer._committed_offset.get(tp),
        "acked_not_committed": len(acked),
        "lowest_acked": min(acked, default=None),
        "gaps": len(consumer._gap.get(tp, ())),
        "next": consumer.next_offset(tp),
    } | consumer.fetch_state(tp)


