"""raw → briefs as a bare aiokafka loop: the limit wirewatch is compared with.

One consume → parse → produce loop in one process, with wirewatch's parser:
each fetched batch is split into briefs, a brief id not seen before is
published (de-duplication in a Python set: nothing survives a crash), the
producer is flushed and the batch's offsets committed. Run by
``bench/throughput_bench.py`` until the briefs topic holds every brief, then
stopped.

    python bench/bare_loop.py BOOTSTRAP RAW_TOPIC BRIEFS_TOPIC GROUP
"""

from __future__ import annotations

import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from wirewatch.core.pipeline import RawRecord, split_record


async def main(bootstrap: str, raw: str, briefs: str, group: str) -> None:
    consumer = AIOKafkaConsumer(raw, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all", enable_idempotence=True)
    await consumer.start()
    await producer.start()
    seen: set[str] = set()
    try:
        while True:
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
                            await producer.send(briefs, brief.model_dump_json().encode(), key=brief.id.encode())
            await producer.flush()
            await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
