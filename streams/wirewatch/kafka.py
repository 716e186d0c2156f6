"""Broker plumbing outside Faust: waiting for the cluster, creating topics, producing pages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from .errors import WirewatchError
from .settings import Settings

__all__ = ["BrokerUnavailable", "wait_for_broker", "ensure_topics", "external_topics", "producer"]

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
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=5000)
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
    ]


async def ensure_topics(settings: Settings, names: Iterable[str] | None = None) -> list[str]:
    """Create the missing ones of ``names`` (default: the external topics); return those created."""
    wanted = list(names if names is not None else external_topics(settings))
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [NewTopic(name, settings.topic_partitions, settings.topic_replication_factor) for name in missing]
        )
        for name, code, *rest in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise WirewatchError(f"could not create topic {name}: error {code} {rest[0] if rest else ''}")
        log.info("created topics %s", ", ".join(missing))
        return missing
    finally:
        await admin.close()


def producer(settings: Settings, **options) -> AIOKafkaProducer:
    """An idempotent, acks=all producer for the cluster in ``settings``."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        **options,
    )
