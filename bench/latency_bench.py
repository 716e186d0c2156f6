"""Latency through one wirewatch worker at a steady rate: raw page → brief, and spike → alert.

One worker runs on topics of its own; the raw, briefs and alerts topics are
created with ``message.timestamp.type=LogAppendTime`` so every record carries
the time the broker appended it. A simulated feed (a snapshot a minute, with
injected spikes) is written at a fixed rate, a fraction of the maximum rate
given on the command line (pages/s, from bench/throughput_bench.py), for
DURATION seconds at each fraction; once with one worker running every stage,
once with the briefs stages and the story stage in two workers.

- raw → brief: a brief's append time minus the append time of the first page
  that carried it;
- spike → alert: an alert's first revision's append time minus the append
  time of the latest of its briefs, the one whose arrival completed the spike.

The simulated feed's event time runs far ahead of the wall clock (a snapshot
a minute, written over a hundred a second), so the story stage's housekeeping,
due once per window step of event time, runs many times a second and adds
table deletions to its writes: the spike → alert figures are pessimistic for
a live feed. Prints one JSON object with p50/p99 per layout and fraction.

    python bench/latency_bench.py MAX_PAGES_PER_SECOND [DURATION]
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid

import orjson
from aiokafka import AIOKafkaProducer

from benchkit import BOOTSTRAP, LOG_APPEND_TIME, create_topics, simulated_pages, worker_env, workers
from wirewatch.models import Envelope
from wirewatch.pipeline import parse_envelope
from wirewatch.settings import Settings

from kafka_helpers import read_topic  # noqa: E402  (benchkit puts tests/ on the path)

PARTITIONS = 4
FRACTIONS = (0.5, 0.9)
#: One worker with every stage; the stages in two workers (WIREWATCH_STAGES).
LAYOUTS = {"one_worker": ["all"], "briefs_and_stories_workers": ["briefs", "stories"]}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values_ms: list[float]) -> dict:
    if not values_ms:
        return {"count": 0}
    return {"count": len(values_ms), "p50_ms": round(percentile(values_ms, 0.5), 1),
            "p99_ms": round(percentile(values_ms, 0.99), 1), "max_ms": round(max(values_ms), 1)}


async def produce_at_rate(topic: str, records: list[tuple[bytes, bytes]], rate: float) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=0)
    await producer.start()
    try:
        started = time.monotonic()
        for index, (key, value) in enumerate(records):
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def measure(settings: Settings, records: list[tuple[bytes, bytes]], rate: float) -> dict:
    """Write ``records`` at ``rate`` and read back what the worker made of them."""
    first_page = {}
    for index, (_, value) in enumerate(records):
        for brief in parse_envelope(Envelope.model_validate_json(value)).briefs:
            first_page.setdefault(brief.id, index)
    asyncio.run(produce_at_rate(settings.topic_raw, records, rate))
    page_fetched = {Envelope.model_validate_json(value).fetched_at: index for index, (_, value) in enumerate(records)}
    raw_times = {}
    for record in asyncio.run(read_topic(settings, settings.topic_raw, at_least=len(records), timeout=120)):
        index = page_fetched.get(Envelope.model_validate_json(record.value).fetched_at)
        if index is not None:
            raw_times[index] = record.timestamp
    briefs = asyncio.run(read_topic(settings, settings.topic_briefs, at_least=len(first_page), timeout=300))
    brief_times = {}
    for record in briefs:
        brief_times.setdefault(record.key.decode(), record.timestamp)
    brief_latency = [brief_times[brief] - raw_times[page] for brief, page in first_page.items() if brief in brief_times]
    alert_latency = []
    for record in asyncio.run(read_topic(settings, settings.topic_alerts, timeout=30)):
        alert = orjson.loads(record.value)
        completed = [brief_times[b] for b in alert["brief_ids"] if b in brief_times]
        if alert["revision"] == 1 and completed:
            alert_latency.append(record.timestamp - max(completed))
    return {"pages": len(records), "rate_pages_per_second": round(rate, 1), "briefs": len(first_page),
            "raw_to_brief": summary(brief_latency), "spike_to_alert": summary(alert_latency)}


def main() -> None:
    max_rate = float(sys.argv[1])
    duration = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    results = {"benchmark": "latency", "max_pages_per_second": max_rate, "duration_seconds": duration,
               **{layout: {} for layout in LAYOUTS}}
    for layout, stages in LAYOUTS.items():
        for seed, fraction in enumerate(FRACTIONS, start=40):
            run = uuid.uuid4().hex[:8]
            env = worker_env(run, partitions=PARTITIONS)
            os.environ.update(env)  # the workers' settings, for the topic names
            settings = Settings()
            asyncio.run(create_topics([settings.topic_raw, settings.topic_briefs, settings.topic_alerts], PARTITIONS,
                                      LOG_APPEND_TIME))
            with workers(env, stages, settle_seconds=5, first_port=6110):
                rate = max_rate * fraction
                pages = max(int(rate * duration), 10)
                records = simulated_pages(pages / 60, snapshot_every=60, seed=seed, spikes=6)
                results[layout][f"at_{int(fraction * 100)}_percent"] = measure(settings, records, rate)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
