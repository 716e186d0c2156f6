"""The topics a worker creates before Faust starts, and the offsets it reads, against the real broker."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from kafka_helpers import run
from wirewatch.service.kafka import TopicSpec, admin_client, ensure_topics
from wirewatch.settings import Settings

pytestmark = pytest.mark.kafka


def test_ensure_topics_creates_what_is_missing_with_its_settings_and_returns_once_listed(wirewatch_settings):
    run_id = uuid.uuid4().hex[:10]
    plain, compacted = f"test-{run_id}.plain", f"test-{run_id}.compacted"
    specs = [plain, TopicSpec(compacted, {"cleanup.policy": "compact,delete", "retention.ms": "60000"}, 2)]

    assert run(ensure_topics(wirewatch_settings, specs)) == [plain, compacted]
    described, configs = run(_describe(wirewatch_settings, [plain, compacted]))

    assert {topic["topic"]: len(topic["partitions"]) for topic in described} == {
        plain: wirewatch_settings.topic_partitions,
        compacted: 2,
    }
    assert configs[compacted]["cleanup.policy"] == "compact,delete"
    assert configs[compacted]["retention.ms"] == "60000"
    assert configs[plain]["cleanup.policy"] == "delete"
    assert run(ensure_topics(wirewatch_settings, specs)) == []


async def _describe(settings: Settings, names: list[str]):
    admin = admin_client(settings)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in names])
    finally:
        await admin.close()
    configs = {}
    for response in responses:
        for _code, _message, _type, name, entries in response.resources:
            configs[name] = {entry[0]: entry[1] for entry in entries}
    return described, configs


def test_the_offset_reader_keeps_its_connections_and_reconnects_after_a_failure(wirewatch_settings):
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaConnectionError

    from kafka_helpers import produce
    from wirewatch.service.kafka import OffsetReader

    topic, group = wirewatch_settings.topic_raw, f"{wirewatch_settings.app_id}-reader"
    for _ in range(3):
        run(produce(wirewatch_settings, topic, b"page", key=b"one"))
    partition = run(produce(wirewatch_settings, topic, b"page", key=b"one")).partition

    async def commit(offset: int) -> None:
        client = AIOKafkaConsumer(bootstrap_servers=wirewatch_settings.bootstrap_servers, group_id=group,
                                  enable_auto_commit=False)
        await client.start()
        try:
            client.assign([TopicPartition(topic, partition)])
            await client.commit({TopicPartition(topic, partition): offset})
        finally:
            await client.stop()

    async def readings() -> list:
        reader = OffsetReader(wirewatch_settings, group)
        try:
            await commit(1)
            taken = [await reader.read([(topic, partition)])]
            await commit(3)
            taken.append(await reader.read([(topic, partition)]))
            connected_once = reader.connections

            async def broken(partitions):
                raise KafkaConnectionError("the connection broke")

            reader._consumer.end_offsets = broken
            with pytest.raises(KafkaConnectionError):
                await reader.read([(topic, partition)])
            taken.append(await reader.read([(topic, partition)]))
            return taken + [connected_once, reader.connections]
        finally:
            await reader.close()

    first, second, after_failure, connected_once, connections = run(readings())
    assert first == ({(topic, partition): 4}, {(topic, partition): 1})
    assert second == ({(topic, partition): 4}, {(topic, partition): 3})
    assert after_failure == second
    assert connected_once == 1, "two readings, one connection"
    assert connections == 2
