"""raw → briefs through the real broker: a wirewatch worker against a bare aiokafka loop.

Both drain the same backlog of simulated pages from a raw topic of their own:
the worker with its whole pipeline (split, de-duplication table, story stage),
the bare loop with the same parser and an in-memory de-duplication set,
consume → parse → produce with the same batching (linger 5 ms), committing
as it goes. Prints one JSON object with pages/s, briefs/s and their ratio.
The broker is KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from wirewatch.models import Envelope
from wirewatch.pipeline import RawRecord, split_record
from wirewatch.simulation import Scenario, simulate

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
PARTITIONS = 4
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from kafka_helpers import WorkerProcess, free_port, produce_many, wait_until_drained  # noqa: E402

from wirewatch.settings import Settings  # noqa: E402


def fill(topic: str, records: list[tuple[bytes, bytes]]) -> None:
    asyncio.run(produce_many(Settings(), topic, records))  # Settings reads KAFKA_BOOTSTRAP_SERVERS too


def corpus(hours: float) -> list[tuple[bytes, bytes]]:
    """(key, envelope) per snapshot; one page URL per hour so the backlog spreads over partitions."""
    start = datetime.now(timezone.utc) - timedelta(hours=hours)
    simulation = simulate(Scenario(hours=hours, seed=33, snapshot_every=60), start)
    records = []
    for snapshot in simulation.snapshots:
        url = f"https://wire.example/{snapshot.fetched_at:%Y%m%d%H}"
        envelope = Envelope(source="bench", url=url, fetched_at=snapshot.fetched_at, body=snapshot.page)
        records.append((url.encode(), envelope.model_dump_json().encode()))
    return records


async def create(topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1) for topic in topics])
    finally:
        await admin.close()


async def count(topic: str) -> int:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, group_id=None)
    await consumer.start()
    try:
        partitions = consumer.assignment() or set()
        while not partitions:
            await asyncio.sleep(0.1)
            partitions = consumer.assignment()
        ends = await consumer.end_offsets(list(partitions))
        starts = await consumer.beginning_offsets(list(partitions))
        return sum(ends[tp] - starts[tp] for tp in partitions)
    finally:
        await consumer.stop()


async def bare_loop(raw: str, briefs: str, pages: int) -> float:
    """Seconds for a plain aiokafka consume → parse → de-duplicate → produce loop to drain ``pages``."""
    consumer = AIOKafkaConsumer(raw, bootstrap_servers=BOOTSTRAP, group_id=f"bare-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5, acks="all", enable_idempotence=True)
    await consumer.start()
    await producer.start()
    seen: set[str] = set()
    done = 0
    started = time.perf_counter()
    try:
        while done < pages:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, messages in batches.items():
                for message in messages:
                    outcome = split_record(
                        RawRecord(value=message.value, topic=tp.topic, partition=tp.partition, offset=message.offset),
                        max_page_bytes=921600,
                        dead_letter_max_original_bytes=65536,
                    )
                    for brief in outcome.briefs:
                        if brief.id not in seen:
                            seen.add(brief.id)
                            await producer.send(briefs, brief.model_dump_json().encode(), key=brief.id.encode(),
                                                timestamp_ms=int(brief.event_time.timestamp() * 1000))
                    done += 1
            await producer.flush()
            await consumer.commit()
        return time.perf_counter() - started
    finally:
        await consumer.stop()
        await producer.stop()


def wirewatch_worker(run: str, pages: int) -> float:
    """Seconds from the worker being ready to its group having committed the whole backlog."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "WIREWATCH_APP_ID": f"bench-{run}",
        "WIREWATCH_TOPIC_RAW": f"bench-{run}.raw",
        "WIREWATCH_TOPIC_BRIEFS": f"bench-{run}.briefs",
        "WIREWATCH_TOPIC_DEAD_LETTERS": f"bench-{run}.dlq",
        "WIREWATCH_TOPIC_STORIES": f"bench-{run}.stories",
        "WIREWATCH_TOPIC_ALERTS": f"bench-{run}.alerts",
        "WIREWATCH_TOPIC_PARTITIONS": str(PARTITIONS),
        "WIREWATCH_WEB_PORT": str(free_port()),
        "WIREWATCH_DATA_DIR": f"/tmp/bench-{run}",
        "WIREWATCH_LOG_LEVEL": "warning",
    }
    worker = WorkerProcess.start(env, log_path=Path(f"/tmp/bench-{run}.log"))
    try:
        worker.wait_for_log("[^Worker]: Ready", timeout=120)
        started = time.perf_counter()
        os.environ.update(env)
        asyncio.run(wait_until_drained(Settings(), Settings().stage_topics(), timeout=900))
        return time.perf_counter() - started
    finally:
        worker.stop()


def main() -> None:
    hours = float(sys.argv[1]) if len(sys.argv) > 1 else 48
    records = corpus(hours)
    run = uuid.uuid4().hex[:8]
    asyncio.run(create([f"bench-{run}.raw", f"bench-{run}.bare-raw", f"bench-{run}.bare-briefs"]))
    fill(f"bench-{run}.bare-raw", records)
    bare_seconds = asyncio.run(bare_loop(f"bench-{run}.bare-raw", f"bench-{run}.bare-briefs", len(records)))
    bare_briefs = asyncio.run(count(f"bench-{run}.bare-briefs"))
    fill(f"bench-{run}.raw", records)
    worker_seconds = wirewatch_worker(run, len(records))
    worker_briefs = asyncio.run(count(f"bench-{run}.briefs"))
    print(json.dumps({
        "benchmark": "raw_to_briefs",
        "pages": len(records),
        "partitions": PARTITIONS,
        "bare_aiokafka": {"seconds": round(bare_seconds, 2), "pages_per_second": round(len(records) / bare_seconds),
                          "briefs": bare_briefs},
        "wirewatch": {"seconds": round(worker_seconds, 2), "pages_per_second": round(len(records) / worker_seconds),
                      "briefs": worker_briefs, "includes": "split, de-duplication table, story stage"},
        "wirewatch_over_bare": round(bare_seconds / worker_seconds, 3),
    }))
    subprocess.run(["rm", "-rf", f"/tmp/bench-{run}"], check=False)


if __name__ == "__main__":
    main()
