"""The topics the agents read and write, and what every agent does with a record it cannot use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import faust
from faust.types import EventT, TopicT

from ..core.pipeline import RawRecord
from ..models import DeadLetter
from ..service.metrics import Metrics
from ..settings import Settings

__all__ = ["STORY_SHARD_KEY", "Topics", "bytes_topic", "dead_letter_publisher", "raw_record"]

#: The one key of the story input: one partition, and so one worker, sees every brief.
STORY_SHARD_KEY = b"stories"


def bytes_topic(app: faust.App, name: str, settings: Settings, **options) -> TopicT:
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
class Topics:
    raw: TopicT
    candidates: TopicT
    briefs: TopicT
    dead_letters: TopicT
    story_input: TopicT
    stories: TopicT
    alerts: TopicT


def dead_letter_publisher(metrics: Metrics, topic: TopicT):
    async def publish_dead_letter(letter: DeadLetter, key: bytes | None) -> None:
        metrics.dead_letters.labels(letter.reason).inc(letter.rejected_count)
        await topic.send(key=key, value=letter.model_dump_json().encode(), force=True)

    return publish_dead_letter


def raw_record(event: EventT) -> RawRecord:
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
