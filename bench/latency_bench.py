"""Latency through wirewatch workers at a steady rate: raw page → brief, and spike → alert.

Workers run on topics of their own; the raw, briefs and alerts topics are
created with ``message.timestamp.type=LogAppendTime`` so every record carries
the time the broker appended it. A simulated feed (a snapshot a minute, with
injected spikes) is written at a fixed rate, a fraction of a maximum rate
given on the command line (pages/s, from bench/throughput_bench.py), for
WARM-UP + DURATION seconds at each fraction, in three layouts:

- the raw → briefs stage alone in one worker (``WIREWATCH_STAGES=briefs``),
  at fractions of that stage's maximum rate;
- one worker running every stage, and the briefs stages and the story stage
  in two workers, at fractions of the whole pipeline's maximum rate.

Only briefs first carried by a page written after the warm-up count. Over
its first seconds a freshly started worker meets a feed in which every brief
is new (the first snapshot of every page), a dozen times the steady share,
and falls behind: a start-up transient rather than the sustained rate, which
alone set the p99 of whole runs. So the feed writes WARM-UP seconds of pages
at the rate, waits until the workers have published every brief of them
(and, where the story stage runs, a story update for each), and only then
writes the measured pages at the same rate; how long that wait took is
reported as ``warm_up_backlog_seconds`` (how far a cold worker fell behind).

- raw → brief: a brief's append time minus the append time of the first page
  that carried it;
- brief → story update: the append time of the story update a brief
  produced minus the brief's (where the story stage runs): the path of
  spike → alert, sampled at every brief rather than at a few alerts;
- spike → alert: an alert's first revision's append time minus the append
  time of the latest of its briefs, the one whose arrival completed the spike.

The simulated feed's event time runs far ahead of the wall clock (a snapshot
a minute, written over a hundred a second), so the story stage's housekeeping,
due once per window step of event time, runs many times a second and adds
table deletions to its writes: the spike → alert figures are pessimistic for
a live feed. Prints one JSON object with p50/p99 per layout and fraction.

    python bench/latency_bench.py BRIEFS_STAGE_MAX PIPELINE_MAX [DURATION]    (pages/s; default 30 s)
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
from benchkit import (
    BOOTSTRAP,
    LOG_APPEND_TIME,
    count_records,
    create_topics,
    runs_stories,
    simulated_pages,
    topics_removed_after,
    worker_env,
    workers,
)

from kafka_helpers import read_topic  # noqa: E402  (benchkit puts tests/ on the path)
from wirewatch.core.pipeline import parse_envelope
from wirewatch.models import Envelope
from wirewatch.settings import Settings

PARTITIONS = 4
FRACTIONS = (0.5, 0.9)
WARM_UP_SECONDS = 10.0
#: Layout → the stages of its workers (WIREWATCH_STAGES, one worker each) and whose maximum rate it runs at.
LAYOUTS = {
    "briefs_stage": (["briefs"], "briefs_stage"),
    "one_worker": (["all"], "pipeline"),
    "briefs_and_stories_workers": (["briefs", "stories"], "pipeline"),
}


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


async def wait_for_records(topic: str, expected: int, timeout: float = 300.0) -> float:
    """Seconds until ``topic`` holds ``expected`` records."""
    started = time.monotonic()
    while await count_records(topic) < expected:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{topic}: fewer than {expected} records after {timeout} s")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def measure(settings: Settings, records: list[tuple[bytes, bytes]], rate: float, warm_up_pages: int,
            *, stories: bool) -> dict:
    """Write ``records`` at ``rate`` and read back what the workers made of those after the first ``warm_up_pages``."""
    first_page = {}
    for index, (_, value) in enumerate(records):
        for brief in parse_envelope(Envelope.model_validate_json(value)).briefs:
            first_page.setdefault(brief.id, index)
    every_brief = len(first_page)
    warm_up_briefs = sum(1 for index in first_page.values() if index < warm_up_pages)
    first_page = {brief: index for brief, index in first_page.items() if index >= warm_up_pages}
    asyncio.run(produce_at_rate(settings.topic_raw, records[:warm_up_pages], rate))
    # The story stage publishes a story update per brief: its backlog is drained when they are all out.
    backlog_seconds = asyncio.run(wait_for_records(settings.topic_stories if stories else settings.topic_briefs,
                                                   warm_up_briefs))
    asyncio.run(produce_at_rate(settings.topic_raw, records[warm_up_pages:], rate))
    page_fetched = {Envelope.model_validate_json(value).fetched_at: index for index, (_, value) in enumerate(records)}
    raw_times = {}
    for record in asyncio.run(read_topic(settings, settings.topic_raw, at_least=len(records), timeout=120)):
        index = page_fetched.get(Envelope.model_validate_json(record.value).fetched_at)
        if index is not None:
            raw_times[index] = record.timestamp
    briefs = asyncio.run(read_topic(settings, settings.topic_briefs, at_least=every_brief, timeout=300))
    measured_from = raw_times[warm_up_pages]
    brief_times = {}
    for record in briefs:
        brief_times.setdefault(record.key.decode(), record.timestamp)
    brief_latency = [brief_times[brief] - raw_times[page] for brief, page in first_page.items() if brief in brief_times]
    story_latency = []
    if stories:
        for record in asyncio.run(read_topic(settings, settings.topic_stories, at_least=every_brief, timeout=300)):
            brief = orjson.loads(record.value)["brief_id"]
            if brief in first_page and brief in brief_times:
                story_latency.append(record.timestamp - brief_times[brief])
    alert_latency = []
    for record in asyncio.run(read_topic(settings, settings.topic_alerts, timeout=30)):
        alert = orjson.loads(record.value)
        completed = [brief_times[b] for b in alert["brief_ids"] if b in brief_times]
        if alert["revision"] == 1 and completed and max(completed) >= measured_from:
            alert_latency.append(record.timestamp - max(completed))
    return {"pages": len(records) - warm_up_pages, "rate_pages_per_second": round(rate, 1), "briefs": len(first_page),
            "warm_up_backlog_seconds": round(backlog_seconds, 1),
            "raw_to_brief": summary(brief_latency),
            **({"brief_to_story_update": summary(story_latency)} if stories else {}),
            "spike_to_alert": summary(alert_latency)}


def main() -> None:
    max_rates = {"briefs_stage": float(sys.argv[1]), "pipeline": float(sys.argv[2])}
    duration = float(sys.argv[3]) if len(sys.argv) > 3 else 30.0
    results = {"benchmark": "latency", "max_pages_per_second": max_rates, "duration_seconds": duration,
               "warm_up_seconds": WARM_UP_SECONDS, **{layout: {} for layout in LAYOUTS}}
    for layout, (stages, max_rate_of) in LAYOUTS.items():
        for seed, fraction in enumerate(FRACTIONS, start=40):
            run = uuid.uuid4().hex[:8]
            env = worker_env(run, partitions=PARTITIONS)
            os.environ.update(env)  # the workers' settings, for the topic names
            settings = Settings()
            with topics_removed_after():
                asyncio.run(create_topics([settings.topic_raw, settings.topic_briefs, settings.topic_stories,
                                           settings.topic_alerts], PARTITIONS, LOG_APPEND_TIME))
                with workers(env, stages, settle_seconds=5, first_port=6110):
                    rate = max_rates[max_rate_of] * fraction
                    warm_up_pages = int(rate * WARM_UP_SECONDS)
                    pages = warm_up_pages + max(int(rate * duration), 10)
                    records = simulated_pages(pages / 60, snapshot_every=60, seed=seed, spikes=6)
                    results[layout][f"at_{int(fraction * 100)}_percent"] = measure(
                        settings, records, rate, warm_up_pages, stories=runs_stories(stages))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
