"""briefs → stories and alerts: the agent ``track_stories`` and the story engine's tables."""

from __future__ import annotations

import asyncio
import logging

import faust
from faust.types import TableT
from pydantic import ValidationError

from ..core.engine import EngineResult, EngineState, HeldWrites, StoryEngine, create_engine
from ..core.feedback import FeedbackLedger, Verdict
from ..core.marks import ProcessedMarks
from ..core.pipeline import read_brief_batch
from ..core.windows import HoppingWindows
from ..models import Brief, ClusterInput
from ..service.metrics import Metrics
from ..settings import Settings
from ..upstream.current_event import make_current
from ..upstream.windowed_table import EventTimeWindowedTable
from .tables import FaustWindowCounts
from .topics import Topics, dead_letter_publisher, raw_record

__all__ = ["declare_story_stage"]

log = logging.getLogger(__name__)

#: How far back a story worker reads editors' verdicts: four half-lives of the ledger, after which one weighs 1/16.
FEEDBACK_MEMORY_SECONDS = 28 * 86400.0


def declare_story_stage(
    app: faust.App, settings: Settings, metrics: Metrics, topics: Topics
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
        table = EventTimeWindowedTable(app, name=name, default=int, beacon=app.tables.beacon,
                                        partitions=settings.topic_partitions, help=help)
        return app.tables.add(table).tumbling(detector.window_step)

    story_windows = window_table("story-step-counts", "Briefs per story and window step.")
    tables = {
        "stories": state_table("stories", "Story id → active story state."),
        "topic-history": state_table("topic-history", "Topic → its counts per window step and learned baseline."),
        "alert-state": state_table("alert-state", "Topic → its active alert, or the topic covering it."),
        "stream-clock": state_table("stream-clock", "observed_since and watermark of the story stream."),
        "processed-briefs": state_table("processed-briefs", "A batch of briefs → each one's story and the alerts it touched."),
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
        processed=ProcessedMarks(tables["processed-briefs"]),
    )
    held = [state.stories, state.topic_history, state.alerts, state.stream, state.story_counts]
    engine = create_engine(settings, state)
    engine.spikes.noise_level = follow_feedback(app, settings).level
    publish_dead_letter = dead_letter_publisher(metrics, topics.dead_letters)
    max_original_bytes = settings.dead_letter_max_original_bytes

    @app.agent(story_input_topic, name="track_stories")
    async def track_stories(stream: faust.StreamT) -> None:
        """Cluster briefs into stories, count them in windows, and raise alerts on spikes."""
        async for events in stream.take_events(1000, within=settings.story_batch_seconds):
            letters, batch = read_brief_batch([raw_record(event) for event in events], max_original_bytes=max_original_bytes)
            for letter, position in letters:
                await publish_dead_letter(letter, events[position].key)
            applied = []
            for brief, position in batch:
                event = events[position]
                make_current(event)
                applied.append((engine.apply(ClusterInput.from_brief(brief)), brief, event))
                # The engine is CPU work: hand the loop to the other agents
                # between briefs, or a batch holds up pages for its whole length.
                await asyncio.sleep(0)
            if any(event.message.generation_id != app.consumer_generation_id for _, _, event in applied):
                # A rebalance came since these records were fetched: they will be read again, here or by the
                # worker that took the partition, and their acks are not recorded (see GuardedConsumer.ack). Nothing
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
                make_current(applied[-1][2])
                for writes in held:
                    writes.apply()
            # Stories and alerts go out only once the state that produced them is on the broker: a worker
            # that reads the batch again after a crash, in other batches and so in another order, finds that
            # state and sends them again as they stand, instead of raising an alert of its own beside one
            # that no state remembers.
            await app.producer.flush()  # a DrainingProducer: the send buffer is drained too
            for result, brief, _ in applied:
                await publish_outcome(result, brief)
            # Changelog writes to different tables reach the broker in no set
            # order, and kill -9 can cut them anywhere. Marking the batch only
            # once the rest of its writes are on the broker means a mark that
            # survives a crash vouches for all of its brief's state. The batch's
            # marks are one row: one changelog record, not one per brief.
            for result, _, _ in applied:
                engine.mark_processed(result)
            if applied:
                make_current(applied[-1][2])
                state.processed.apply()
            metrics.stories_active.set(len(state.stories))
            if batch:
                metrics.expire_alerts(state.stream["watermark"], settings.alert_cooldown_seconds)

    async def publish_outcome(result: EngineResult, brief: Brief) -> None:
        story = result.story
        if result.late:
            metrics.late_briefs.inc()
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


def follow_feedback(app: faust.App, settings: Settings) -> FeedbackLedger:
    """Editors' verdicts of the last weeks (every partition of wire.feedback), kept up to date by a task.

    Read without a consumer group, as the desk page reads its topics: every
    story worker knows every verdict, and a restarted one reads them again.
    """
    ledger = FeedbackLedger()

    @app.task
    async def read_feedback() -> None:
        from ..service.kafka import follow_topics_forever

        async for _, value in follow_topics_forever(settings, [settings.topic_feedback],
                                                    since_seconds=FEEDBACK_MEMORY_SECONDS, reader="feedback"):
            try:
                ledger.record(Verdict.model_validate_json(value))
            except ValidationError:
                log.warning("feedback: skipped an unreadable verdict")

    return ledger
