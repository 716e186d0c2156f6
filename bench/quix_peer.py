"""raw → briefs written with Quix Streams: the peer wirewatch is compared with.

The same stage as the worker's: split each page with wirewatch's parser,
re-key the briefs by id through a repartition topic, keep the first sighting
of each id in changelog-backed state, publish it. Run by
``bench/throughput_bench.py`` in the peer's own venv (bench/peer-requirements.txt)
until the briefs topic holds every brief, then stopped.

    python bench/quix_peer.py BOOTSTRAP RAW_TOPIC BRIEFS_TOPIC GROUP STATE_DIR
"""

from __future__ import annotations

import sys

from quixstreams import Application

from wirewatch.core.pipeline import RawRecord, split_record


def main() -> None:
    bootstrap, raw_name, briefs_name, group, state_dir = sys.argv[1:6]
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        producer_extra_config={"linger.ms": 5},
        loglevel="WARNING",
    )
    raw = app.topic(raw_name, key_deserializer="bytes", value_deserializer="bytes")
    briefs = app.topic(briefs_name, key_serializer="str", value_serializer="bytes")

    def split(value: bytes) -> list[dict]:
        outcome = split_record(RawRecord(value=value), max_page_bytes=921600, dead_letter_max_original_bytes=65536)
        return [{"id": brief.id, "json": brief.model_dump_json()} for brief in outcome.briefs]

    def first_sighting(brief: dict, state) -> bool:
        if state.get("seen"):
            return False
        state.set("seen", True)
        return True

    stream = app.dataframe(raw).apply(split, expand=True)
    stream = stream.group_by(lambda brief: brief["id"], name="brief-id")
    stream = stream.filter(first_sighting, stateful=True)
    stream.apply(lambda brief: brief["json"].encode()).to_topic(briefs)
    app.run()


if __name__ == "__main__":
    main()
