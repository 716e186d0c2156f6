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
import weakref
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from types import SimpleNamespace

import faust
import orjson
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from faust.streams import _current_event
from faust.transport.drivers.aiokafka import Consumer as AiokafkaDriverConsumer
from faust.types import EventT, TableT, TopicT
from faust.types.tuples import ack_lock
from mode.utils.futures import notify
from mode.utils.times import want_seconds

from ..service.desk import DeskView
from ..core.engine import EngineResult, EngineState, HeldWrites, StoryEngine, create_engine
from ..service.kafka import OffsetReader, TopicSpec
from ..service.metrics import Metrics
from ..models import Brief, ClusterInput, DeadLetter
from ..core.ordering import Admission, OffsetOrder
from ..core.pipeline import FirstSightings, RawRecord, RecentIds, bare_page_source, dead_letter, read_brief, split_record
from ..core.progress import StallWatch
from ..settings import Settings
from ..service.web import WirewatchWeb, add_views
from ..core.windows import HoppingWindows, WindowCount

__all__ = ["WirewatchApp", "create_app", "changelog_topics", "flow_state", "STORY_SHARD_KEY"]

STORY_SHARD_KEY = b"stories"
#: How often the worker looks for subscribed topics the cluster metadata lacks (cheap: no request unless one is).
_MISSING_TOPICS_CHECK_SECONDS = 2.0

log = logging.getLogger(__name__)


class _Consumer(AiokafkaDriverConsumer):
    """Faust's aiokafka consumer, with guards that keep the group from committing past unprocessed records.

    Faust records a source record as done when a stream acks it, and commits
    the run of done offsets that follows the committed one. Its check counts
    the committed offset as the last record done, not the next one to do, so
    a hole of one record was committed past (lost) and a longer one never (a
    commit stalled for good). The takeover and crash tests saw both:

    * Records out of order. Faust seeks its partitions to their committed
      offsets after a rebalance and after a table recovery while it still holds
      a batch fetched before the seek, further on; it takes the records in
      between for a gap, and when they arrive they are older than its read
      offset and dropped. So this consumer hands on a source partition's
      records only in offset order (:class:`~wirewatch.core.ordering.OffsetOrder`):
      a record further on is held back with the rest of its batch and the
      fetcher is sent back to the expected offset. Should the record that comes
      first from there still be further on, the gap is real (expired records,
      an upstream producer's transaction markers): it is marked done and the
      record handed on. Faust infers no gaps of its own on source partitions.
    * Records skipped yet acked. During a rebalance, and for records fetched
      before it, a stream skips a record without processing it and acks it all
      the same. Such acks are not recorded here: the record is read again.

    * A partition never committed. Faust's seek to the committed offsets
      (aiokafka's ``seek_to_committed``) leaves a partition without a committed
      offset, or committed at 0, where its fetcher stands, so records skipped
      before the seek were never read again, and Faust, knowing no committed
      offset, committed past them. This consumer seeks such a partition to its
      log start, and counts from there as from a committed offset.

    Besides, a commit never skips the record at the committed offset while it is
    not done, and :meth:`stranded` finds where records wait that nothing will
    process, for the worker to read them again.

    Changelog topics are compacted and keep Faust's handling.
    """

    held_back_records = None  # set by create_app: the metric that counts held-back records
    unprocessed_acks = None  # set by create_app: the metric that counts acks not recorded

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._order = OffsetOrder()
        #: Per source partition with nothing committed, the log start reading began at (Faust knows no offset).
        self._start_offsets: dict[TopicPartition, int] = {}

    async def perform_seek(self) -> None:
        await super().perform_seek()
        # No await until the order matches Faust's read offsets again: records keep flowing meanwhile.
        acks_enabled_for = self.app.topics.acks_enabled_for
        sources = [tp for tp in self.assignment() if acks_enabled_for(tp.topic)]
        committed = {tp: self._read_offset.get(tp) for tp in sources}
        started = {tp: offset for tp, offset in committed.items() if offset}
        self._order.reset(started)
        self._start_offsets.clear()
        not_sought = [tp for tp in sources if tp not in started]
        if not_sought:
            # consumer_auto_offset_reset is "earliest": with nothing committed, reading starts at the log start.
            for tp, log_start in (await self.earliest_offsets(*not_sought)).items():
                self._start_offsets[tp] = log_start
                await self.seek(tp, log_start)

    async def _add_gap(self, tp: TopicPartition, offset_from: int, offset_to: int) -> None:
        # Faust infers a gap from a record further on than its read offset; on a source partition, whose records
        # come in order, that is only ever a read offset out of step, and the records "in the gap" would count as
        # done unprocessed. Real gaps are marked by getmany (mark_gap).
        if not self.app.topics.acks_enabled_for(tp.topic):
            await super()._add_gap(tp, offset_from, offset_to)

    async def seek(self, partition: TopicPartition, offset: int) -> None:
        await super().seek(partition, offset)
        self._order.seek(partition, offset)

    async def on_partitions_revoked(self, revoked) -> None:
        self._order.forget(revoked)
        for tp in revoked:
            self._start_offsets.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    def mark_gap(self, tp: TopicPartition, start: int, end: int) -> None:
        """Count offsets ``start`` to ``end - 1`` of ``tp`` as done: the log has no records there.

        Faust's own gaps start one after the committed offset at the earliest,
        which would leave a gap at the committed offset holding the commit up.
        """
        gaps = self._gap[tp]
        gaps.addi(start, end)
        gaps.merge_overlaps()

    def _lowest_done(self, tp: TopicPartition) -> int | None:
        """The lowest offset of ``tp`` acked or in a gap and not yet committed."""
        acked = self._acked.get(tp)
        gaps = self._gap.get(tp)
        lowest = [min(acked)] if acked else []
        if gaps:
            lowest.append(gaps.begin())
        return min(lowest, default=None)

    def _committed(self, tp: TopicPartition) -> int | None:
        """The committed offset of ``tp``; with nothing committed yet, the log start reading began at.

        Faust knows no committed offset for a partition never committed, nor
        for one committed at 0.
        """
        committed = self._committed_offset.get(tp)
        return committed if committed is not None else self._start_offsets.get(tp)

    def _forget_committed_acks(self, tp: TopicPartition) -> None:
        """Drop acked offsets of ``tp`` below its committed offset.

        A record read again gets acked again; acked while a commit past it was
        under way, it lands below the new committed offset. Faust then commits
        nothing for that round, and the stale offset hid a hole behind it from
        :meth:`stranded` (a restarted worker's story stage waited for its stall
        watch this way).
        """
        committed = self._committed(tp)
        acked = self._acked.get(tp)
        if committed is None or not acked or min(acked) >= committed:
            return
        stale = [offset for offset in acked if offset < committed]
        acked[:] = [offset for offset in acked if offset >= committed]
        self._acked_index[tp].difference_update(stale)

    def _commit_hole(self, tp: TopicPartition) -> tuple[int, int] | None:
        """The committed offset of ``tp`` and its lowest done offset, when the record at the first is not done
        while a later one is."""
        self._forget_committed_acks(tp)
        committed = self._committed(tp)
        lowest_done = self._lowest_done(tp)
        if committed is not None and lowest_done is not None and lowest_done > committed:
            return committed, lowest_done
        return None

    def _new_offset(self, tp: TopicPartition) -> int | None:
        # Faust's own check lets a commit skip the record at the committed offset when the next one is done.
        if self._commit_hole(tp) is not None:
            return None
        return super()._new_offset(tp)

    def assigned(self, topics: Iterable[str]) -> list[TopicPartition]:
        """The partitions of ``topics`` assigned to this consumer."""
        topics = set(topics)
        return [tp for tp in self.assignment() if tp.topic in topics]

    def fetch_state(self, tp: TopicPartition) -> dict:
        """The fetcher's position, pause and highwater for ``tp``, and whether fetched records of it wait to be
        taken; empty where the fetcher does not say (aiokafka keeps these to itself)."""
        try:
            fetcher_consumer = self._thread._consumer
            state = {"fetched_not_taken": tp in fetcher_consumer._fetcher._records}
            subscription = fetcher_consumer._subscription.subscription
            if subscription is not None and tp in subscription.assignment.tps:
                partition = subscription.assignment.state_value(tp)
                state |= {"position": partition._position, "paused": partition.paused, "highwater": partition.highwater}
            return state
        except AttributeError:
            return {}

    def stranded(self, topics: Iterable[str]) -> dict[tuple[str, int], tuple[int, int, str]]:
        """Partitions of ``topics`` with records that nothing will process unless they are read again.

        Maps each to the offset to read again from, an offset beyond the
        stranded records, and how they were stranded. Two ways it was seen:

        * a commit hole: the record at the committed offset is not done while
          a later one is. An agent here acks its records in offset order, so
          this lasts only if the record went missing inside Faust or its ack
          was not recorded (see :meth:`ack`);
        * a fetch past: the fetcher stands past the next offset to hand on,
          unpaused, with nothing fetched waiting to be taken: Faust let go of
          records it had fetched.

        Either may show for a moment in normal work; only one that lasts means
        records are stranded.
        """
        stranded = {}
        for tp in self.assigned(topics):
            hole = self._commit_hole(tp)
            if hole is not None:
                stranded[(tp.topic, tp.partition)] = (*hole, "not done while a later one is")
                continue
            next_offset = self._order.next_offset(tp)
            fetch = self.fetch_state(tp)
            position = fetch.get("position")
            if (
                next_offset is not None and position is not None and position > next_offset
                and not fetch.get("paused") and not fetch.get("fetched_not_taken")
            ):
                stranded[(tp.topic, tp.partition)] = (next_offset, position, "fetched but never handed on")
        return stranded

    async def ask_for_missing_topics(self) -> list[str]:
        """Subscribed topics the consumer's cluster metadata lacks; when there are some, ask the cluster again.

        A topic missing from the metadata at a group join gets no partitions
        (Faust's assignor ignores it), and aiokafka rejoins once the topic
        shows up in its metadata, which it refreshes every
        ``metadata_max_age_ms`` (5 minutes). A broker busy loading after a
        restart answered without topics created seconds before: the worker
        read nothing for those 5 minutes.
        """
        consumer = self._thread._consumer
        if consumer is None:
            return []
        cluster = consumer._client.cluster
        missing = sorted(topic for topic in consumer.subscription() if cluster.partitions_for_topic(topic) is None)
        if missing:
            await self._thread.call_thread(consumer._client.force_metadata_update)
        return missing

    def next_offset(self, tp: TopicPartition) -> int | None:
        """The offset of the record this consumer hands on next from a source partition, if known."""
        return self._order.next_offset(tp)

    def ack(self, message) -> bool:
        app = self.app
        if not app.topics.acks_enabled_for(message.topic) or (
            app.flow_control.is_active() and message.generation_id == app.consumer_generation_id
        ):
            return super().ack(message)
        # Skipped by its stream, or processed and acked too late to count: read it again (at least once).
        with ack_lock:
            if not message.acked:
                message.acked = True
                # No longer outstanding either: a rebalance waits for outstanding records before it goes on.
                self._unacked_messages.discard(message)
                notify(self._waiting_for_ack)
                if self.unprocessed_acks is not None:
                    self.unprocessed_acks.labels(message.topic).inc()
        return False

    async def getmany(self, timeout: float):
        order = self._order
        acks_enabled_for = self.app.topics.acks_enabled_for
        rewound_now = set()
        async for tp, message in super().getmany(timeout):
            if not acks_enabled_for(tp.topic):
                yield tp, message
                continue
            expected = order.next_offset(tp)
            admission = Admission.HOLD_BACK if tp in rewound_now else order.admit(tp, message.offset)
            if admission is Admission.HOLD_BACK:
                if self.held_back_records is not None:
                    self.held_back_records.labels(tp.topic).inc()
                if tp not in rewound_now:
                    # The rest of this batch for tp was fetched before the seek: held back as well.
                    rewound_now.add(tp)
                    log.warning("%s[%s]: offset %s arrived before %s; fetching again from %s",
                                tp.topic, tp.partition, message.offset, expected, expected)
                    await self.seek(tp, expected)
                    order.rewound(tp)
                continue
            if admission is Admission.HAND_ON_PAST_GAP:
                log.info("%s[%s]: the log has no records from offset %s to %s",
                         tp.topic, tp.partition, expected, message.offset - 1)
                self.mark_gap(tp, expected, message.offset)
            yield tp, message


class _FaustApp(faust.App):
    """A Faust app whose web server leaves ``/`` to the desk page, with :class:`_Consumer`."""

    def _new_web(self) -> WirewatchWeb:
        return WirewatchWeb(self)

    def _new_consumer(self):
        self.transport.Consumer = _Consumer
        return super()._new_consumer()


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


class _EventTimeWindowedTable(faust.Table):
    """A table wrapped in windows that wirewatch expires itself, by event time (see ``FaustWindowCounts``).

    faust-streaming's compiled windows keep "never expires" as ``expires == 0.0``
    while its tables ask ``window.expires is None``, so a windowed table that
    never expires still keeps Faust's expiry bookkeeping: a heap entry per
    write, which nothing ever takes off (memory growing with every count), and
    a set of keys per window end, from which a deletion discards the key, and
    a key that a RocksDB store gives back as a list cannot be hashed: the story
    agent crashed as soon as buckets it had written itself expired.
    """

    def _should_expire_keys(self) -> bool:
        return False


class FaustWindowCounts:
    """:class:`~wirewatch.core.windows.WindowCounts` over a tumbling Faust table of ``step``-long buckets.

    A hopping window's count is the sum of its buckets. Counts added are held
    until :meth:`apply`, like :class:`~wirewatch.core.engine.HeldWrites`: a batch
    of briefs on one topic adds to its bucket with one changelog record.
    """

    def __init__(self, table, windows: HoppingWindows) -> None:
        self.table = table
        self.windows = windows
        self._held: Counter[tuple[str, float]] = Counter()

    def add(self, key: str, timestamp: float) -> None:
        self._held[(key, timestamp - timestamp % self.windows.step)] += 1

    def counts(self, key: str, timestamp: float) -> list[WindowCount]:
        ranges = self.windows.ranges(timestamp)
        held = self._held
        buckets = {
            start: self.table.relative_to(start)[key].value() + held.get((key, start), 0)
            for start in dict.fromkeys(step for window_start, _ in ranges for step in self.windows.steps(window_start))
        }
        return [
            WindowCount(start, end, sum(buckets[step] for step in self.windows.steps(start))) for start, end in ranges
        ]

    def forget_before(self, cutoff: float) -> None:
        # A bucket goes once every window holding it ended before the cutoff.
        # Store keys are (key, (start, end)); a RocksDB store gives them back as lists.
        last_end = self.windows.size - 0.1
        table = self.table.table
        for stored in [k for k in table.data.keys() if k[1][0] + last_end < cutoff]:
            del table[stored]
        for held in [held for held in self._held if held[1] + last_end < cutoff]:
            del self._held[held]

    def discard(self) -> None:
        """Forget the held counts: the table stays as it was."""
        self._held.clear()

    def apply(self) -> None:
        """Add the held counts to the table."""
        for (key, start), count in self._held.items():
            self.table.relative_to(start)[key] += count
        self._held.clear()


def _bytes_topic(app: faust.App, name: str, settings: Settings, **options) -> TopicT:
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.topic_partitions,
        **options,
    )


@dataclass(frozen=True)
class _Topics:
    raw: TopicT
    candidates: TopicT
    briefs: TopicT
    dead_letters: TopicT
    story_input: TopicT
    stories: TopicT
    alerts: TopicT


def _dead_letter_publisher(metrics: Metrics, topic: TopicT):
    async def publish_dead_letter(letter: DeadLetter, key: bytes | None) -> None:
        metrics.dead_letters.labels(letter.reason).inc(letter.rejected_count)
        await topic.send(key=key, value=letter.model_dump_json().encode(), force=True)

    return publish_dead_letter


def _declare_brief_stages(app: faust.App, settings: Settings, metrics: Metrics, topics: _Topics) -> dict[str, TableT]:
    """raw → brief candidates → briefs: the agents ``split_pages`` and ``deduplicate_briefs``; returns their tables."""
    raw_topic, candidates_topic, briefs_topic = topics.raw, topics.candidates, topics.briefs
    story_input_topic = topics.story_input
    first_seen = app.Table(
        "brief-first-seen",
        key_type=str,
        partitions=settings.topic_partitions,
        help="Brief id → [fetched_at, partition, offset, recorded_at] of the candidate that first carried it.",
    )
    sightings = FirstSightings(first_seen, settings.brief_id_retention_seconds)

    publish_dead_letter = _dead_letter_publisher(metrics, topics.dead_letters)

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
            record = _raw_record(event)
            started = time.perf_counter()
            try:
                outcome = split_record(
                    record,
                    max_page_bytes=settings.max_page_bytes,
                    dead_letter_max_original_bytes=settings.dead_letter_max_original_bytes,
                    max_briefs_per_page=settings.max_briefs_per_page,
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
            # Oldest first: later stages see a page's briefs in event-time order.
            for brief in sorted(outcome.briefs, key=lambda b: (b.event_time, b.id)):
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
            brief = read_brief(_raw_record(event), max_original_bytes=settings.dead_letter_max_original_bytes)
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


def _declare_story_stage(
    app: faust.App, settings: Settings, metrics: Metrics, topics: _Topics
) -> tuple[StoryEngine, dict[str, TableT]]:
    """briefs → stories and alerts: the agent ``track_stories`` and the engine's tables."""
    story_input_topic, stories_topic, alerts_topic = topics.story_input, topics.stories, topics.alerts
    detector = settings.detector_config()
    windows = HoppingWindows(detector.window_size, detector.window_step)

    def state_table(name: str, help: str) -> TableT:
        return app.Table(name, partitions=settings.topic_partitions, help=help)

    def window_table(name: str, help: str):
        # No Faust expiry: it runs on the wall clock and forgets what it must
        # expire after a restart (faust-streaming #385). The engine drops old
        # windows itself, by event time, through the table (so the changelog
        # gets tombstones).
        table = _EventTimeWindowedTable(app, name=name, default=int, beacon=app.tables.beacon,
                                        partitions=settings.topic_partitions, help=help)
        return app.tables.add(table).tumbling(detector.window_step)

    story_windows = window_table("story-step-counts", "Briefs per story and window step.")
    tables = {
        "stories": state_table("stories", "Story id → active story state."),
        "topic-history": state_table("topic-history", "Topic → its counts per window step and learned baseline."),
        "alert-state": state_table("alert-state", "Topic → its active alert, or the topic covering it."),
        "stream-clock": state_table("stream-clock", "observed_since and watermark of the story stream."),
        "processed-briefs": state_table("processed-briefs", "Brief id → its story and the alerts it touched."),
        "story-step-counts": story_windows.table,
    }
    # The state a batch changes reaches the tables once per key at the batch's end (see the agent);
    # the processed marks go straight to their table, after everything else.
    state = EngineState(
        stories=HeldWrites(tables["stories"]),
        topic_history=HeldWrites(tables["topic-history"]),
        alerts=HeldWrites(tables["alert-state"]),
        stream=HeldWrites(tables["stream-clock"]),
        story_counts=FaustWindowCounts(story_windows, windows),
        processed=tables["processed-briefs"],
    )
    held = [state.stories, state.topic_history, state.alerts, state.stream, state.story_counts]
    engine = create_engine(settings, state)
    publish_dead_letter = _dead_letter_publisher(metrics, topics.dead_letters)
    max_original_bytes = settings.dead_letter_max_original_bytes

    @app.agent(story_input_topic, name="track_stories")
    async def track_stories(stream: faust.StreamT) -> None:
        """Cluster briefs into stories, count them in windows, and raise alerts on spikes."""
        async for events in stream.take_events(1000, within=settings.story_batch_seconds):
            # Briefs of one page reach this partition from several candidate
            # partitions in any interleaving; sorting each short batch by event
            # time gives the engine the same order however they interleaved.
            read = [(read_brief(_raw_record(event), max_original_bytes=max_original_bytes), event) for event in events]
            for letter, event in read:
                if isinstance(letter, DeadLetter):
                    await publish_dead_letter(letter, event.key)
            batch = sorted(
                ((brief, event) for brief, event in read if isinstance(brief, Brief)),
                key=lambda item: (item[0].event_time, item[0].id),
            )
            applied = []
            for brief, event in batch:
                _make_current(event)
                applied.append((engine.apply(ClusterInput.from_brief(brief)), brief, event))
                # The engine is CPU work: hand the loop to the other agents
                # between briefs, or a batch holds up pages for its whole length.
                await asyncio.sleep(0)
            if any(event.message.generation_id != app.consumer_generation_id for _, _, event in applied):
                # A rebalance came since these records were fetched: they will be read again, here or by the
                # worker that took the partition, and their acks are not recorded (see _Consumer.ack). Nothing
                # of the batch may reach the tables or the output topics, least of all marks vouching for state
                # that was not written.
                for writes in held:
                    writes.discard()
                log.info("track_stories: a rebalance came since a batch of %s briefs was fetched; "
                         "it will be read again", len(applied))
                continue
            if applied:
                # Faust sends a table write to the changelog partition of the current event's partition: all
                # the batch's events share one (the story input has one key).
                _make_current(applied[-1][2])
                for writes in held:
                    writes.apply()
            # Stories and alerts go out only once the state that produced them is on the broker: a worker
            # that reads the batch again after a crash, in other batches and so in another order, finds that
            # state and sends them again as they stand, instead of raising an alert of its own beside one
            # that no state remembers.
            await flush_producer(app.producer)
            for result, brief, _ in applied:
                await publish_outcome(result, brief)
            # Changelog writes to different tables reach the broker in no set
            # order, and kill -9 can cut them anywhere. Marking the batch only
            # once the rest of its writes are on the broker means a mark that
            # survives a crash vouches for all of its brief's state.
            for result, _, event in applied:
                _make_current(event)
                engine.mark_processed(result)
            metrics.stories_active.set(len(state.stories))
            if batch:
                metrics.expire_alerts(state.stream["watermark"], settings.alert_cooldown_seconds)

    async def publish_outcome(result: EngineResult, brief: Brief) -> None:
        story = result.story
        if result.replayed:
            metrics.story_replays.inc()
        elif story is not None and story.opened:
            metrics.stories_opened.inc()
        if story is not None:
            await stories_topic.send(
                key=story.id.encode(),
                value=story.model_dump_json().encode(),
                timestamp=brief.event_time.timestamp(),
                force=True,
            )
        for alert in result.alerts:
            metrics.note_alert(alert.topic, alert.count, alert.detected_at.timestamp())
            if not result.replayed:
                if alert.revision == 1:
                    metrics.alerts_raised.labels(alert.severity).inc()
                else:
                    metrics.alert_revisions.inc()
            await alerts_topic.send(
                key=alert.topic.encode(),
                value=alert.model_dump_json().encode(),
                timestamp=alert.detected_at.timestamp(),
                force=True,
            )

    return engine, tables


def create_app(settings: Settings | None = None) -> WirewatchApp:
    """Build the wirewatch Faust app for ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    app = _FaustApp(
        settings.group_id,
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
    metrics = Metrics(max_label_values=settings.metrics_max_label_values)
    app.consumer.held_back_records = metrics.held_back_records
    app.consumer.unprocessed_acks = metrics.unprocessed_acks
    # Faust stops delivering records to every stream whenever more than this
    # many table writes wait to be produced, and drains them with a wake-up
    # per write; at its default (100) the story stage's writes held up the
    # whole worker for about a third of a backlog run.
    app.producer.buffer.max_messages = settings.producer_buffer_max_messages
    desk = DeskView(spike_seconds=settings.alert_cooldown_seconds, story_seconds=settings.story_ttl_seconds)

    topics = _Topics(
        raw=_bytes_topic(app, settings.topic_raw, settings),
        candidates=_bytes_topic(app, settings.topic_candidates, settings, internal=True),
        briefs=_bytes_topic(app, settings.topic_briefs, settings),
        dead_letters=_bytes_topic(app, settings.topic_dead_letters, settings),
        story_input=_bytes_topic(app, settings.topic_story_input, settings, internal=True),
        stories=_bytes_topic(app, settings.topic_stories, settings),
        alerts=_bytes_topic(app, settings.topic_alerts, settings),
    )
    tables: dict[str, TableT] = {}
    source_topics: set[str] = set()
    engine = None
    if settings.runs_briefs:
        tables |= _declare_brief_stages(app, settings, metrics, topics)
        source_topics |= {settings.topic_raw, settings.topic_candidates}
    if settings.runs_stories:
        engine, story_tables = _declare_story_stage(app, settings, metrics, topics)
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
        """Read a source partition again where records are stranded (see ``_Consumer.stranded``).

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
        """Join again with every topic once the cluster knows them all (see ``_Consumer.ask_for_missing_topics``)."""
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


def _partition_offsets(consumer: _Consumer, tp: TopicPartition) -> dict:
    """Faust's read and committed offsets, its acked offsets not yet committed (how many, the lowest) and its
    gaps, the offset :class:`_Consumer` hands on next, and the fetcher's position, pause and highwater for
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


class _BufferMarker:
    """Put in Faust's send buffer behind what it holds; reached once everything before it was handed on."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.message = SimpleNamespace(channel=self)  # the buffer hands a record on to its message's channel

    async def publish_message(self, fut, wait: bool = False) -> None:
        self.reached.set()


async def flush_producer(producer) -> None:
    """Wait until every record sent so far, table changelog records included, is on the broker.

    Faust's own flush stops waiting for its send buffer once 0.1 s pass
    without a send, as they can on a busy worker, and does not wait for the
    record its sender has taken from the buffer and not yet handed on.
    """
    marker = _BufferMarker()
    producer.buffer.put(marker)
    await marker.reached.wait()
    await producer.flush()


def _make_current(event: EventT) -> None:
    """Make ``event`` the one whose changelog partitions Faust's tables write to, in this task.

    Not with ``Stream._set_current_event``: that also sets the stream's own
    current event, which ``Stream.take`` reads, once a batch is consumed, to
    learn which event it is buffering. It then acked the batch's last event a
    second time instead, and the record it buffered was never acked: a hole of
    one record that Faust's own check committed past and :class:`_Consumer`
    does not.
    """
    _current_event.set(weakref.ref(event))


def _raw_record(event: EventT) -> RawRecord:
    message = event.message
    headers = message.headers or {}
    if not isinstance(headers, dict):
        headers = {name: value for name, value in headers}
    timestamp = (
        datetime.fromtimestamp(message.timestamp, tz=timezone.utc) if message.timestamp is not None else None
    )
    return RawRecord(
        value=message.value,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp=timestamp,
        key=message.key,
        headers=headers,
    )
