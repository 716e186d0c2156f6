"""The Faust application factory: topics, then each stage's agents and tables, then the watchdogs.

:func:`create_app` builds one independent app per settings object, so tests
and tools can run several side by side. The agents live in
:mod:`.brief_stages` and :mod:`.story_stage`, the timers in
:mod:`.watchdogs`; every decision is made in :mod:`wirewatch.core`.

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
commits an offset, and the app's producer drains its send buffer on every
flush (:mod:`wirewatch.upstream.producer_flush`), so what was sent for a
record is on the broker before the record counts as done: still at least once.

The web server (Faust's, on ``web_port``) serves ``/metrics``, ``/health``,
``/ready``, the desk page at ``/`` and its data at ``/api/desk``; all read-only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faust
from faust.types import TableT
from mode.utils.times import want_seconds

from ..core.engine import StoryEngine
from ..core.watchlists import WatchlistFile
from ..service.desk import DeskView
from ..service.kafka import TopicSpec
from ..service.metrics import Metrics
from ..service.web import WebPolicy, WirewatchWeb, add_views
from ..settings import Settings
from ..upstream.consumer import GuardedConsumer
from ..upstream.producer_flush import DrainingProducer
from .brief_stages import declare_brief_stages
from .delivery_stage import MutedTopics, declare_delivery_stage, declare_silence_watch
from .story_stage import declare_story_stage
from .topics import STORY_SHARD_KEY, Topics, bytes_topic
from .watchdogs import declare_desk_feed, declare_watchdogs

__all__ = ["WirewatchApp", "create_app", "changelog_topics", "STORY_SHARD_KEY"]

log = logging.getLogger(__name__)


class _FaustApp(faust.App):
    """A Faust app whose web server leaves ``/`` to the desk page, with :class:`GuardedConsumer` and
    :class:`DrainingProducer`.

    ``wirewatch_metrics`` is what the consumer counts held-back records and
    unrecorded acks in; ``web_policy`` says who may use the web port.
    """

    def __init__(self, *args, wirewatch_metrics: Metrics, web_policy: WebPolicy, **kwargs) -> None:
        self.wirewatch_metrics = wirewatch_metrics
        self.web_policy = web_policy
        super().__init__(*args, **kwargs)

    def _new_web(self) -> WirewatchWeb:
        return WirewatchWeb(self, policy=self.web_policy)

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
        web_policy=WebPolicy(
            host_names=settings.web_host_names(),
            token=settings.web_auth_token.get_secret_value() if settings.web_auth_token else None,
            idle_timeout=settings.web_idle_timeout_seconds,
        ),
        broker=settings.broker_url,
        broker_credentials=settings.broker_credentials(),
        store=settings.store,
        datadir=settings.data_dir,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        web_host=settings.web_host,
        # Faust binds every interface unless told; web_host alone is only the address it links to.
        web_bind=settings.web_host,
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
    watchlists = WatchlistFile(settings.watchlists_file)  # a broken file stops the start with its reason

    topics = Topics(
        raw=bytes_topic(app, settings.topic_raw, settings),
        candidates=bytes_topic(app, settings.topic_candidates, settings, internal=True),
        briefs=bytes_topic(app, settings.topic_briefs, settings),
        dead_letters=bytes_topic(app, settings.topic_dead_letters, settings),
        story_input=bytes_topic(app, settings.topic_story_input, settings, internal=True),
        stories=bytes_topic(app, settings.topic_stories, settings),
        alerts=bytes_topic(app, settings.topic_alerts, settings),
        feedback=bytes_topic(app, settings.topic_feedback, settings),
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
    if settings.runs_delivery:
        # Not a watched source: delivery waits for Alertmanager on purpose, and a restart would not bring it back.
        tables |= declare_delivery_stage(app, settings, metrics, topics, watchlists)
    metrics.watch_tables(lambda: [((name,), float(len(table.data))) for name, table in tables.items()])

    stuck = declare_watchdogs(app, settings, metrics, frozenset(source_topics))
    declare_desk_feed(app, settings, desk)
    muted = declare_silence_watch(app, settings) if settings.alertmanager_url else MutedTopics()
    add_views(app, metrics, desk, stalled=lambda: sorted(stuck.stalled), watchlists=watchlists, muted=muted,
              feedback_topic=topics.feedback)
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
