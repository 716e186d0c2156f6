"""What the Kafka benchmarks share: the broker address, simulated pages, topics, a worker's environment."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from wirewatch.models import Envelope
from wirewatch.offline.simulation import Scenario, simulate
from wirewatch.settings import Settings

__all__ = [
    "BOOTSTRAP",
    "REPO",
    "LOG_APPEND_TIME",
    "simulated_pages",
    "create_topics",
    "fill",
    "count_records",
    "changelog_records",
    "wait_for_output",
    "append_time_span",
    "wait_until_group_stable",
    "worker_env",
    "workers",
    "runs_stories",
    "topics_removed_after",
    "topic_names",
]

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
#: Topic config under which every record carries the time the broker appended it.
LOG_APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from kafka_helpers import WorkerProcess, produce_many  # noqa: E402


def simulated_pages(hours: float, *, snapshot_every: float, seed: int = 33, end: datetime | None = None,
                    **scenario) -> list[tuple[bytes, bytes]]:
    """(key, envelope) per snapshot of a feed ending at ``end`` (default now); one page URL per hour,
    so the pages spread over the raw topic's partitions."""
    end = end or datetime.now(timezone.utc)
    simulation = simulate(Scenario(hours=hours, seed=seed, snapshot_every=snapshot_every, **scenario),
                          end - timedelta(hours=hours))
    records = []
    for snapshot in simulation.snapshots:
        url = f"https://wire.example/{snapshot.fetched_at:%Y%m%d%H}"
        envelope = Envelope(source="bench", url=url, fetched_at=snapshot.fetched_at, body=snapshot.page)
        records.append((url.encode(), envelope.model_dump_json().encode()))
    return records


@asynccontextmanager
async def _admin() -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def topic_names() -> set[str]:
    """Every topic on the broker."""
    async with _admin() as admin:
        return set(await admin.list_topics())


async def _delete_topics(topics: list[str]) -> None:
    async with _admin() as admin:
        await admin.delete_topics(topics)


@contextmanager
def topics_removed_after() -> Iterator[None]:
    """Deletes, on the way out, every topic created inside: each measurement meets the broker as the one
    before it did (a broker holding thousands of partitions from earlier runs ran every worker slower)."""
    before = asyncio.run(topic_names())
    try:
        yield
    finally:
        created = sorted(asyncio.run(topic_names()) - before)
        if created:
            asyncio.run(_delete_topics(created))


async def create_topics(topics: list[str], partitions: int, configs: dict[str, str] | None = None) -> None:
    async with _admin() as admin:
        await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs or {}) for topic in topics])


async def fill(topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """Write a backlog as fast as the broker takes it: batches of up to 1 MiB, so no contender waits on it."""
    await produce_many(Settings(kafka_bootstrap_servers=BOOTSTRAP), topic, records, linger_ms=20,
                       max_batch_size=1 << 20)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic`` (none while it does not exist)."""
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic)
    return [TopicPartition(topic, p) for p in partitions or ()]


async def count_records(topic: str) -> int:
    """Records on ``topic`` now (0 while it does not exist)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        if not partitions:
            return 0
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        return sum(ends[tp] - starts[tp] for tp in partitions)
    finally:
        await consumer.stop()


async def changelog_records(app_id: str) -> dict[str, int]:
    """Records on each table changelog of app ``app_id``, by table."""
    prefix, suffix = f"{app_id}-", "-changelog"
    return {name.removeprefix(prefix).removesuffix(suffix): await count_records(name)
            for name in sorted(await topic_names()) if name.startswith(prefix) and name.endswith(suffix)}


async def wait_for_output(topic: str, expected: int, alive: Callable[[], bool], timeout: float = 900.0) -> None:
    """Until ``topic`` holds ``expected`` records; fails when ``alive()`` says its writer died, or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while await count_records(topic) < expected:
        if not alive():
            raise RuntimeError(f"the process writing {topic} died; see its log in /tmp")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{topic}: fewer than {expected} records after {timeout} s")
        await asyncio.sleep(0.2)


async def _edge_append_times(topic: str, *, last: bool) -> list[int]:
    """Append time of the first (or last) record of each non-empty partition of ``topic``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        wanted = {tp: (ends[tp] - 1 if last else starts[tp]) for tp in partitions if ends[tp] > starts[tp]}
        consumer.assign(list(wanted))
        for tp, offset in wanted.items():
            consumer.seek(tp, offset)
        found: dict[TopicPartition, int] = {}
        while len(found) < len(wanted):
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                for record in records:
                    if record.offset == wanted[tp]:
                        found[tp] = record.timestamp
        return list(found.values())
    finally:
        await consumer.stop()


async def append_time_span(source: str, output: str) -> float:
    """Seconds from the first record appended to ``source`` to the last appended to ``output``
    (both topics created with :data:`LOG_APPEND_TIME`)."""
    first = min(await _edge_append_times(source, last=False))
    last = max(await _edge_append_times(output, last=True))
    return (last - first) / 1000


async def wait_until_group_stable(group: str, timeout: float = 120.0) -> None:
    """Until consumer group ``group`` has members and has finished rebalancing."""
    async with _admin() as admin:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for response in await admin.describe_consumer_groups([group]):
                for _error, _group, state, _protocol_type, _protocol, members, *_ in response.groups:
                    if state == "Stable" and members:
                        return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"consumer group {group} not stable after {timeout} s")


def worker_env(run: str, *, partitions: int) -> dict[str, str]:
    """Environment for ``wirewatch worker`` processes of one benchmark run, on topics of their own."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "WIREWATCH_APP_ID": f"bench-{run}",
        "WIREWATCH_TOPIC_RAW": f"bench-{run}.raw",
        "WIREWATCH_TOPIC_BRIEFS": f"bench-{run}.briefs",
        "WIREWATCH_TOPIC_DEAD_LETTERS": f"bench-{run}.dlq",
        "WIREWATCH_TOPIC_STORIES": f"bench-{run}.stories",
        "WIREWATCH_TOPIC_ALERTS": f"bench-{run}.alerts",
        "WIREWATCH_TOPIC_PARTITIONS": str(partitions),
        "WIREWATCH_DATA_DIR": f"/tmp/bench-{run}",
        "WIREWATCH_LOG_LEVEL": "info",
    }


def runs_stories(stages: list[str]) -> bool:
    """Whether a layout of workers with these ``WIREWATCH_STAGES`` runs the story stage."""
    return any(Settings(stages=stage).runs_stories for stage in stages)


@contextmanager
def workers(env: dict[str, str], stages: list[str], *, settle_seconds: float, first_port: int) -> Iterator[list]:
    """One ``wirewatch worker`` per entry of ``stages`` (its WIREWATCH_STAGES), ready and settled into their
    groups, each with a data folder and web port of its own; stopped and cleaned up afterwards."""
    processes = []
    base = Path(env["WIREWATCH_DATA_DIR"])
    try:
        for index, stage in enumerate(stages):
            data_dir = base / str(index)
            data_dir.mkdir(parents=True)
            own = {**env, "WIREWATCH_STAGES": stage, "WIREWATCH_DATA_DIR": str(data_dir),
                   "WIREWATCH_WEB_PORT": str(first_port + index)}
            processes.append(WorkerProcess.start(own, log_path=Path(f"{base}-{index}.log")))
        for process in processes:
            process.wait_ready(timeout=180)
        time.sleep(settle_seconds)
        yield processes
    finally:
        for process in processes:
            process.stop()
        shutil.rmtree(base, ignore_errors=True)
