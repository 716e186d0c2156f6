"""The Faust application: topics, tables and the agents that wire them to the core.

:func:`create_app` builds one independent app per settings object, so tests
and tools can run several side by side. Agents stay thin: every decision is
made in :mod:`wirewatch.core.pipeline`, :mod:`wirewatch.core.parser` and
:mod:`wirewatch.core.engine`.

Topology::

    wire.raw ──split_pages──▶ <app_id>-brief-candidates ──deduplicate_briefs──▶ wire.briefs
       │                       (keyed by brief id)         (table brief-first-seen)
       ▼                                                          │
    wire.raw.dlq                            <app_id>-story-input ◀┘ (keyed by story shard)
                                                   │
                                             track_stories ──▶ wire.stories, wire.alerts
                                 (tables: stories, topic-history, alert-state, stream-clock,
                                  processed-briefs, windowed story-step-counts)

Raw pages are keyed by page URL or source; the candidates topic is keyed by
brief id so that every snapshot of a brief reaches the same partition, and
so the partition that owns its entry in the de-duplication table. Story
input is keyed by one shard key, so one partition (and one worker) sees every
brief and the stories do not depend on how many workers run.

``WIREWATCH_STAGES`` picks what a worker runs: everything (the default), only
raw → briefs, or only the story stage. A stories-only worker is a consumer
group of its own (``<app_id>-stories``, see ``Settings.group_id``): giving
the story engine's CPU work a process of its own keeps it off the briefs' path.

Every send is ``force=True``: sent at once rather than attached to the source
offset, which Faust would only publish at the next commit (up to
``commit_interval`` later, on every hop). Faust flushes the producer before it
commits an offset, so what was sent for a record is on the broker before the
record counts as done: still at least once.

The web server (Faust's, on ``web_port``) serves ``/metrics``, ``/health``,
``/ready``, the desk page at ``/`` and its data at ``/api/desk``; all read-only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import faust
import orjson
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from faust.types import TableT
from mode.utils.times import want_seconds

from ..core.engine import StoryEngine
from ..core.progress import StallWatch
from ..service.desk import DeskView
from ..service.kafka import OffsetReader, TopicSpec
from ..service.metrics import Metrics
from ..service.web import WirewatchWeb, add_views
from ..settings import Settings
from ..upstream.consumer import GuardedConsumer
from ..upstream.producer_flush import DrainingProducer
from .brief_stages import declare_brief_stages
from .story_stage import declare_story_stage
from .topics import STORY_SHARD_KEY, Topics, bytes_topic

__all__ = ["WirewatchApp", "create_app", "changelog_topics", "flow_state", "STORY_SHARD_KEY"]

#: How often the worker looks for subscribed topics the cluster metadata lacks (cheap: no request unless one is).
_MISSING_TOPICS_CHECK_SECONDS = 2.0

log = logging.getLogger(__name__)


class _FaustApp(faust.App):
    """A Faust app whose web server leaves ``/`` to the desk page, with :class:`GuardedConsumer` and
    :class:`DrainingProducer`.

    ``wirewatch_metrics`` is what the consumer counts held-back records and
    unrecorded acks in.
    """

    def __init__(self, *args, wirewatch_metrics: Metrics, **kwargs) -> None:
        self.wirewatch_metrics = wirewatch_metrics
        super().__init__(*args, **kwargs)

    def _new_web(self) -> WirewatchWeb:
        return WirewatchWeb(self)

    def _new_consumer(self):
        self.transport.Consumer = GuardedConsumer
        return super()._new_consumer()

    def _new_producer(self):
        self.transport.Producer = DrainingProducer
        return super()._new_producer()


@dataclass
class WirewatchApp:
    """A Faust app with what the ``worker`` command needs besides it."""

    app: faust.App
    settings: Settings
    metrics: Metrics
    desk: DeskView
    #: The story engine, when this worker runs the story stage.
    engine: StoryEngine | None
    #: The topics its agents consume and commit (changelogs are only read).
    source_topics: frozenset[str]


def create_app(settings: Settings | None = None) -> WirewatchApp:
    """Build the wirewatch Faust app for ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    metrics = Metrics(max_label_values=settings.metrics_max_label_values)
    app = _FaustApp(
        settings.group_id,
        wirewatch_metrics=metrics,
        broker=settings.broker_url,
        broker_credentials=settings.broker_credentials(),
        store=settings.store,
        datadir=settings.data_dir,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        # Table contents and cluster topology stay off the web port.
        web_tables_enabled=False,
        web_router_enabled=False,
        consumer_auto_offset_reset="earliest",
        consumer_group_instance_id=settings.group_instance_id,
        broker_session_timeout=settings.session_timeout_seconds,
        producer_max_batch_size=settings.producer_max_batch_bytes,
        # With Faust's default (4096) a restarted worker facing a large backlog
        # filled its stream buffers while recovering tables and never finished
        # recovering (cf. faust-streaming #74).
        stream_buffer_maxsize=settings.stream_buffer_maxsize,
        autodiscover=False,
        # No agent runs on_leader, so the leader-election topic is not needed.
        topic_disable_leader=True,
    )
    # Faust stops delivering records to every stream whenever more than this
    # many table writes wait to be produced, and drains them with a wake-up
    # per write; at its default (100) the story stage's writes held up the
    # whole worker for about a third of a backlog run.
    app.producer.buffer.max_messages = settings.producer_buffer_max_messages
    desk = DeskView(spike_seconds=settings.alert_cooldown_seconds, story_seconds=settings.story_ttl_seconds)

    topics = Topics(
        raw=bytes_topic(app, settings.topic_raw, settings),
        candidates=bytes_topic(app, settings.topic_candidates, settings, internal=True),
        briefs=bytes_topic(app, settings.topic_briefs, settings),
        dead_letters=bytes_topic(app, settings.topic_dead_letters, settings),
        story_input=bytes_topic(app, settings.topic_story_input, settings, internal=True),
        stories=bytes_topic(app, settings.topic_stories, settings),
        alerts=bytes_topic(app, settings.topic_alerts, settings),
    )
    tables: dict[str, TableT] = {}
    source_topics: set[str] = set()
    engine = None
    if settings.runs_briefs:
        tables |= declare_brief_stages(app, settings, metrics, topics)
        source_topics |= {settings.topic_raw, settings.topic_candidates}
    if settings.runs_stories:
        engine, story_tables = declare_story_stage(app, settings, metrics, topics)
        tables |= story_tables
        source_topics.add(settings.topic_story_input)
    metrics.watch_tables(lambda: [((name,), float(len(table.data))) for name, table in tables.items()])

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

    @app.task
    async def follow_desk() -> None:
        """Feed the desk page from every partition of the stories, alerts and briefs topics."""
        from ..service.kafka import follow_topics

        handlers = {
            settings.topic_alerts: desk.on_alert,
            settings.topic_stories: desk.on_story,
            settings.topic_briefs: desk.on_brief,
        }
        while True:
            try:
                async for topic, value in follow_topics(
                    settings, list(handlers), since_seconds=settings.story_ttl_seconds
                ):
                    try:
                        handlers[topic](orjson.loads(value))
                    except (orjson.JSONDecodeError, KeyError, TypeError):
                        log.warning("desk: skipped an unreadable record on %s", topic)
            except (KafkaError, OSError) as error:
                # The desk must never take the worker down with it: follow again shortly.
                log.warning("desk: lost the cluster (%s); following again in 5 s", error)
                await asyncio.sleep(5)

    add_views(app, metrics, desk, stalled=lambda: sorted(stuck.stalled))
    return WirewatchApp(
        app=app, settings=settings, metrics=metrics, desk=desk, engine=engine, source_topics=frozenset(source_topics)
    )


def changelog_topics(app: faust.App) -> list[TopicSpec]:
    """The changelog topics of ``app``'s tables, with the settings Faust would create them with.

    Faust creates them as it starts, racing its own first group join: a
    changelog not yet in the consumer's metadata then is left out of the
    assignment, and the first table write to it fails. Created beforehand
    (:func:`~wirewatch.service.kafka.ensure_topics`), they are there from the start.
    """
    specs = []
    for table in app.tables.values():
        topic = table.changelog_topic
        policies = [policy for policy, wanted in (("compact", topic.compacting), ("delete", topic.deleting)) if wanted]
        config = {"cleanup.policy": ",".join(policies)} if policies else {}
        if topic.retention:
            config["retention.ms"] = str(int(want_seconds(topic.retention) * 1000))
        config.update({key: str(value) for key, value in (topic.config or {}).items()})
        specs.append(TopicSpec(topic.get_topic_name(), config, topic.partitions or app.conf.topic_partitions))
    return specs


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


