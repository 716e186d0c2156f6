"""raw → briefs through the real broker: wirewatch (1 and 2 workers), a bare aiokafka loop, and Quix Streams.

Every contender drains the same backlog of simulated pages (a snapshot a
minute, so most items repeat) from a raw topic of its own with 4 partitions
and publishes each brief id once:

- bare: one aiokafka consume → parse → produce loop, the same parser,
  de-duplication in a Python set (no state survives a crash), linger 5 ms,
  committing after each fetched batch: the limit for Python on this broker;
- wirewatch: ``wirewatch worker`` processes with the whole pipeline (split,
  candidates topic, de-duplication table, story stage): one worker, two
  workers in one group, and two workers with the stages apart
  (``WIREWATCH_STAGES=briefs`` and ``stories``); started on an empty topic
  and settled into their groups before the backlog is written;
- quix: the same stage in Quix Streams (bench/quix_peer.py), run only when the
  peer's venv exists (WIREWATCH_BENCH_PEER_PYTHON, default .cache/bench-peer).

Throughput is timed from the first brief on the output topic to the last,
so start-up and group joins count for no one. Prints one JSON object.
The broker is KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092).

    python bench/throughput_bench.py [HOURS]
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchkit import BOOTSTRAP, REPO, count_records, create_topics, fill, simulated_pages, worker_env, workers
from wirewatch.pipeline import RawRecord, parse_envelope, split_record
from wirewatch.models import Envelope

PARTITIONS = 4
SETTLE_SECONDS = 8.0
PEER_PYTHON = Path(os.environ.get("WIREWATCH_BENCH_PEER_PYTHON", REPO / ".cache/bench-peer/bin/python"))


async def fill_and_time(raw: str, records, clock) -> float:
    timing = asyncio.create_task(clock)
    await fill(raw, records)
    return await timing


async def time_output(topic: str, expected: int, alive=lambda: True, timeout: float = 900.0) -> float:
    """Seconds from the first record on ``topic`` to the ``expected``-th, polled every 50 ms."""
    first = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the process writing {topic} died; see its log in /tmp")
        found = await count_records(topic)
        now = time.perf_counter()
        if found and first is None:
            first = now
        if found >= expected:
            return now - first
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{topic}: fewer than {expected} records after {timeout} s")


async def bare_loop(raw: str, briefs: str, expected: int) -> None:
    consumer = AIOKafkaConsumer(raw, bootstrap_servers=BOOTSTRAP, group_id=f"bare-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5, acks="all", enable_idempotence=True)
    await consumer.start()
    await producer.start()
    seen: set[str] = set()
    try:
        while len(seen) < expected:
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
            await producer.flush()
            await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


async def run_bare(records, expected: int) -> float:
    run = uuid.uuid4().hex[:8]
    raw, briefs = f"bench-{run}.raw", f"bench-{run}.briefs"
    await create_topics([raw, briefs], PARTITIONS)
    await fill(raw, records)
    clock = asyncio.create_task(time_output(briefs, expected))
    await bare_loop(raw, briefs, expected)
    return await clock


def run_wirewatch(records, expected: int, stages: list[str]) -> float:
    """One worker per entry of ``stages`` (its WIREWATCH_STAGES).

    Workers start on an empty raw topic and settle into their groups first, so
    no rebalance lands mid-run.
    """
    env = worker_env(uuid.uuid4().hex[:8], partitions=PARTITIONS)
    with workers(env, stages, settle_seconds=SETTLE_SECONDS, first_port=6100) as processes:
        clock = time_output(env["WIREWATCH_TOPIC_BRIEFS"], expected,
                            lambda: all(process.process.poll() is None for process in processes))
        return asyncio.run(fill_and_time(env["WIREWATCH_TOPIC_RAW"], records, clock))


def run_quix(records, expected: int) -> float | None:
    if not PEER_PYTHON.exists():
        return None
    run = uuid.uuid4().hex[:8]
    raw, briefs = f"bench-{run}.raw", f"bench-{run}.briefs"
    asyncio.run(create_topics([raw, briefs], PARTITIONS))
    asyncio.run(fill(raw, records))
    state_dir = f"/tmp/bench-{run}-quix"
    with open(f"/tmp/bench-{run}-quix.log", "wb") as log:
        peer = subprocess.Popen(
            [str(PEER_PYTHON), str(REPO / "bench/quix_peer.py"), BOOTSTRAP, raw, briefs, f"bench-{run}-quix", state_dir],
            stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            return asyncio.run(time_output(briefs, expected, lambda: peer.poll() is None))
        finally:
            peer.terminate()
            peer.wait(30)
            shutil.rmtree(state_dir, ignore_errors=True)


def figures(pages: int, briefs: int, seconds: float | None) -> dict | None:
    if seconds is None:
        return None
    return {"seconds": round(seconds, 2), "pages_per_second": round(pages / seconds),
            "briefs_per_second": round(briefs / seconds)}


def main() -> None:
    hours = float(sys.argv[1]) if len(sys.argv) > 1 else 48
    records = simulated_pages(hours, snapshot_every=60)
    expected = len({brief.id for _, value in records
                    for brief in parse_envelope(Envelope.model_validate_json(value)).briefs})
    bare = asyncio.run(run_bare(records, expected))
    one = run_wirewatch(records, expected, ["all"])
    two = run_wirewatch(records, expected, ["all", "all"])
    split = run_wirewatch(records, expected, ["briefs", "stories"])
    quix = run_quix(records, expected)
    result = {
        "benchmark": "raw_to_briefs",
        "pages": len(records),
        "briefs": expected,
        "partitions": PARTITIONS,
        "bare_aiokafka": figures(len(records), expected, bare),
        "wirewatch_1_worker": figures(len(records), expected, one),
        "wirewatch_2_workers": figures(len(records), expected, two),
        "wirewatch_briefs_and_stories_workers": figures(len(records), expected, split),
        "quix_streams": figures(len(records), expected, quix),
        "wirewatch_over_bare": round(bare / one, 3),
        "wirewatch_over_quix": round(quix / one, 3) if quix else None,
        "two_workers_over_one": round(one / two, 3),
        "split_stages_over_one": round(one / split, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
