"""The topics the agents read and write, and what every agent does with a record it cannot use."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import faust
from faust.exceptions import ProducerSendError
from faust.types import EventT, TopicT

from ..core.pipeline import MAX_DEAD_LETTER_KEY_BYTES, RawRecord, minimal_dead_letter
from ..models import DeadLetter
from ..service.metrics import Metrics
from ..settings import Settings

__all__ = ["STORY_SHARD_KEY", "Topics", "bytes_topic", "dead_letter_publisher", "raw_record"]

log = logging.getLogger(__name__)

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
    feedback: TopicT


def dead_letter_publisher(metrics: Metrics, topic: TopicT):
    """A coroutine function that sends a dead letter, and counts it once the producer has taken it.

    A letter the producer refuses (too large for a request, say) goes again
    without the record's key and value, so that its place and reason still
    reach the topic before the record's offset is committed: the agent that
    called it does not move past a record until some letter for it was taken.
    """

    async def publish_dead_letter(letter: DeadLetter, key: bytes | None) -> None:
        short_key = key[:MAX_DEAD_LETTER_KEY_BYTES] if key is not None else None
        try:
            await topic.send(key=short_key, value=letter.model_dump_json().encode(), force=True)
        except ProducerSendError as error:
            log.warning("dead letter for %s/%s refused (%s); sending it without the record",
                        letter.source_partition, letter.source_offset, error)
            letter = minimal_dead_letter(letter, str(error))
            await topic.send(key=None, value=letter.model_dump_json().encode(), force=True)
        metrics.dead_letters.labels(letter.reason).inc(letter.rejected_count)

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
