"""Broker plumbing outside Faust: waiting for the cluster, creating topics, producing pages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from ..errors import WirewatchError
from ..settings import Settings

__all__ = [
    "BrokerUnavailable",
    "TopicSpec",
    "wait_for_broker",
    "ensure_topics",
    "agent_topics",
    "external_topics",
    "producer",
    "admin_client",
    "OffsetReader",
    "follow_topics",
    "follow_topics_forever",
]

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36


class BrokerUnavailable(WirewatchError):
    """The Kafka cluster did not answer within the allowed time."""


async def wait_for_broker(settings: Settings, *, timeout: float | None = None, interval: float = 1.0) -> None:
    """Return once the cluster answers a metadata request; retry until ``timeout`` (None: forever)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        admin = admin_client(settings, request_timeout_ms=5000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaConnectionError, KafkaError, OSError) as error:
            if deadline is not None and time.monotonic() >= deadline:
                raise BrokerUnavailable(
                    f"no Kafka broker answered at {settings.kafka_bootstrap_servers} within {timeout:g}s"
                ) from error
            if attempt == 1 or attempt % 10 == 0:
                log.warning("waiting for Kafka at %s (%s)", settings.kafka_bootstrap_servers, error)
        finally:
            await admin.close()
        await asyncio.sleep(interval)


def external_topics(settings: Settings) -> list[str]:
    """Topics that other systems read or write; Faust declares only its internal ones."""
    return [
        settings.topic_raw,
        settings.topic_briefs,
        settings.topic_dead_letters,
        settings.topic_stories,
        settings.topic_alerts,
        settings.topic_feedback,
    ]


def agent_topics(settings: Settings) -> list[str]:
    """Every topic the agents read or write, their internal ones included."""
    return [*external_topics(settings), *settings.stage_topics()[1:]]


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create with settings of its own (a table's changelog: compacted, perhaps expiring)."""

    name: str
    config: Mapping[str, str] = field(default_factory=dict)
    #: None: ``settings.topic_partitions``.
    partitions: int | None = None


async def ensure_topics(
    settings: Settings, topics: Iterable[str | TopicSpec] | None = None, *, visible_within: float = 30.0
) -> list[str]:
    """Create the missing ones of ``topics`` (default: :func:`agent_topics`); return the names of those created.

    The worker calls this before Faust starts: a topic an agent consumes that
    does not exist at the first partition assignment is only picked up at the
    next metadata refresh, and a table's changelog missing then leaves the
    table's partitions unassigned. So this returns only once the cluster's
    metadata lists every topic it created (within ``visible_within`` seconds).
    """
    wanted = agent_topics(settings) if topics is None else topics
    specs = [TopicSpec(topic) if isinstance(topic, str) else topic for topic in wanted]
    admin = admin_client(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = list({spec.name: spec for spec in specs if spec.name not in existing}.values())
        if not missing:
            return []
        response = await admin.create_topics(
            [
                NewTopic(
                    spec.name,
                    spec.partitions or settings.topic_partitions,
                    settings.topic_replication_factor,
                    topic_configs=dict(spec.config),
                )
                for spec in missing
            ]
        )
        for name, code, *rest in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise WirewatchError(f"could not create topic {name}: error {code} {rest[0] if rest else ''}")
        names = [spec.name for spec in missing]
        await _wait_until_listed(admin, names, visible_within)
        log.info("created topics %s", ", ".join(names))
        return names
    finally:
        await admin.close()


async def _wait_until_listed(admin: AIOKafkaAdminClient, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        described = await admin.describe_topics(names)
        unready = {
            topic["topic"]
            for topic in described
            if topic["error_code"] != 0
            or not topic["partitions"]
            or any(partition["leader"] < 0 for partition in topic["partitions"])
        }
        unready |= set(names) - {topic["topic"] for topic in described}
        if not unready:
            return
        if time.monotonic() >= deadline:
            raise WirewatchError(f"topics created but not in the cluster's metadata after {timeout:g}s: {sorted(unready)}")
        await asyncio.sleep(0.1)


def admin_client(settings: Settings, **options) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, **settings.kafka_client_options(), **options
    )


def producer(settings: Settings, **options) -> AIOKafkaProducer:
    """An idempotent, acks=all producer for the cluster in ``settings``."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        **settings.kafka_client_options(),
        **options,
    )


def consumer(settings: Settings, *topics: str, **options) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics, bootstrap_servers=settings.bootstrap_servers, **settings.kafka_client_options(), **options
    )


class OffsetReader:
    """End offsets of partitions and a consumer group's committed offsets, on connections kept open.

    Separate from Faust's consumer: calls into its thread from a timer could
    land in the middle of a rebalance. One admin client and one group-less
    consumer serve every reading; after a failed reading both are closed, and
    the next one connects afresh.
    """

    def __init__(self, settings: Settings, group_id: str) -> None:
        self.settings, self.group_id = settings, group_id
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        #: How many times the reader has connected; stays 1 while the cluster answers.
        self.connections = 0

    async def read(
        self, partitions: list[tuple[str, int]]
    ) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
        """(end offset of each of ``partitions``, the group's committed offset of every partition it has committed)."""
        try:
            if self._admin is None or self._consumer is None:
                await self._connect()
            ends = await self._consumer.end_offsets([TopicPartition(topic, partition) for topic, partition in partitions])
            committed = await self._admin.list_consumer_group_offsets(self.group_id)
        except BaseException:
            await self.close()
            raise
        return (
            {(tp.topic, tp.partition): offset for tp, offset in ends.items()},
            {(tp.topic, tp.partition): meta.offset for tp, meta in committed.items() if meta.offset >= 0},
        )

    async def _connect(self) -> None:
        self.connections += 1
        self._admin = admin_client(self.settings)
        self._consumer = consumer(self.settings, enable_auto_commit=False, group_id=None)
        await self._admin.start()
        await self._consumer.start()

    async def close(self) -> None:
        admin, client = self._admin, self._consumer
        self._admin = self._consumer = None
        for closing in (client.stop() if client else None, admin.close() if admin else None):
            if closing is not None:
                try:
                    await closing
                except (KafkaError, OSError) as error:
                    log.debug("closing the offset reader: %s", error)


async def follow_topics(
    settings: Settings, topics: list[str], *, since_seconds: float, refresh_seconds: float = 10.0
) -> AsyncIterator[tuple[str, bytes]]:
    """Every record of every partition of ``topics`` from ``since_seconds`` ago on, without a consumer group.

    Topics that do not exist yet, and partitions added later, are picked up
    within ``refresh_seconds``.
    """
    client = consumer(settings, enable_auto_commit=False, group_id=None, auto_offset_reset="latest")
    await client.start()
    assigned: set[TopicPartition] = set()
    try:
        next_refresh = 0.0
        while True:
            if time.monotonic() >= next_refresh:
                next_refresh = time.monotonic() + refresh_seconds
                await client._client.force_metadata_update()
                found = {
                    TopicPartition(topic, partition)
                    for topic in topics
                    for partition in (client.partitions_for_topic(topic) or ())
                }
                if found - assigned:
                    new = found - assigned
                    # assign() forgets positions, so keep those already read from
                    positions = {tp: await client.position(tp) for tp in assigned}
                    assigned = found
                    client.assign(sorted(assigned))
                    for tp, position in positions.items():
                        client.seek(tp, position)
                    since_ms = int((time.time() - since_seconds) * 1000)
                    starts = await client.offsets_for_times({tp: since_ms for tp in new})
                    # Nothing since then: start at the end offset as it is now. A lazy seek_to_end would take the
                    # end as of the first fetch, skipping whatever was appended in between.
                    ends = await client.end_offsets([tp for tp in new if starts.get(tp) is None])
                    for tp in new:
                        client.seek(tp, starts[tp].offset if starts.get(tp) is not None else ends[tp])
            if not assigned:
                await asyncio.sleep(1.0)
                continue
            batches = await client.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    if record.value is not None:
                        yield tp.topic, record.value
    finally:
        await client.stop()


async def follow_topics_forever(
    settings: Settings, topics: list[str], *, since_seconds: float, reader: str
) -> AsyncIterator[tuple[str, bytes]]:
    """:func:`follow_topics`, following again from ``since_seconds`` ago 5 s after losing the cluster.

    For readers beside the agents (the desk page, editors' verdicts) that must
    never take the worker down with them; ``reader`` names one in the log.
    After a loss the records since then come again: what they feed must take a repeat.
    """
    while True:
        try:
            async for record in follow_topics(settings, topics, since_seconds=since_seconds):
                yield record
        except (KafkaError, OSError) as error:
            log.warning("%s: lost the cluster (%s); following again in 5 s", reader, error)
            await asyncio.sleep(5)
