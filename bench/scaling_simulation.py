"""The story stage past one partition, simulated on real labelled streams (docs/scaling.md).

    python bench/scaling_simulation.py LABELLED.jsonl [LABELLED.jsonl ...] [--shards 1,2,4,8] [--json]

Two steps, each measured on every file:

1. **Split the engine into stages keyed apart.** One engine runs every brief,
   its CPU time split into term extraction (per brief: any partition can do
   it), clustering (assigning the brief, building the story update: needs
   every live story) and spike tracking (per topic: a topic-keyed partition
   can do it). With N partitions for the per-brief and per-topic stages and
   one for clustering, the stage rate is the slowest of N/extraction,
   1/clustering and N/spikes (per brief, CPU only). Clustering is unchanged,
   so B3 is the one-partition figure.
2. **Shard clustering itself** (``wirewatch.offline.sharding``): N engines
   behind a router (by brief id, by language, by heaviest term), stories
   linked across shards by a coordinator. B3 after links and at arrival per
   N, and briefs/s with a core per shard (the busiest shard's engine time).

Prints a Markdown table per step, or JSON lines with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "streams"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tfidf_reference import read_labelled  # noqa: E402

from wirewatch.core.engine import create_engine  # noqa: E402
from wirewatch.models import ClusterInput  # noqa: E402
from wirewatch.offline.evaluation import score_clusters  # noqa: E402
from wirewatch.offline.sharding import SHARD_KEYS, ShardedStories  # noqa: E402
from wirewatch.settings import Settings  # noqa: E402


def ordered_inputs(records: list[dict]) -> list[ClusterInput]:
    inputs: dict[str, ClusterInput] = {}
    for record in records:
        inputs.setdefault(record["id"], ClusterInput.model_validate(record))
    return sorted(inputs.values(), key=lambda brief: (brief.published_at, brief.id))


class _Timed:
    """Wraps a bound method and adds up the CPU time spent in it."""

    def __init__(self, method) -> None:
        self.method, self.seconds = method, 0.0

    def __call__(self, *args, **kwargs):
        started = time.process_time()
        try:
            return self.method(*args, **kwargs)
        finally:
            self.seconds += time.process_time() - started


def stage_split(briefs: list[ClusterInput]) -> dict:
    """CPU milliseconds per brief of the engine's three parts, and the stage rates they allow per N."""
    engine = create_engine(Settings())
    extraction = _Timed(engine.extractor.extract)
    spikes = _Timed(engine.spikes.observe)
    engine.extractor.extract, engine.spikes.observe = extraction, spikes
    started = time.process_time()
    for brief in briefs:
        engine.process(brief)
    total = time.process_time() - started
    count = len(briefs)
    clustering = total - extraction.seconds - spikes.seconds
    return {"briefs": count, "engine_ms": round(1000 * total / count, 3),
            "extraction_ms": round(1000 * extraction.seconds / count, 3),
            "clustering_ms": round(1000 * clustering / count, 3),
            "spikes_ms": round(1000 * spikes.seconds / count, 3)}


def staged_rate(split: dict, partitions: int) -> float:
    """Briefs/s of the staged engine with ``partitions`` for extraction and spikes and one for clustering."""
    return 1000 / max(split["extraction_ms"] / partitions, split["clustering_ms"], split["spikes_ms"] / partitions)


def sharded(records: list[dict], briefs: list[ClusterInput], shards: int, by: str) -> dict:
    stories = ShardedStories(Settings(), shards, by)
    at_arrival = {}
    for brief in briefs:
        _, result, _ = stories.process(brief)
        at_arrival[brief.id] = stories.shown_as(result.story.id)
    truth = {record["id"]: record["story"] for record in records}
    after = score_clusters(truth, {brief: stories.shown_as(story) for brief, story in at_arrival.items()})
    arrival = score_clusters(truth, at_arrival)
    return {"shards": shards, "by": by, "b3_after_links": after["bcubed_f1"], "b3_at_arrival": arrival["bcubed_f1"],
            "stories": after["predicted_stories"], "briefs_per_shard": stories.briefs,
            "briefs_per_second_a_core_each": round(stories.parallel_briefs_per_second())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--shards", default="1,2,4,8", help="shard counts, comma-separated")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counts = [int(value) for value in args.shards.split(",")]
    splits, shard_rows = {}, []
    for path in args.files:
        records = read_labelled(path)
        briefs = ordered_inputs(records)
        name = Path(path).name
        splits[name] = stage_split(briefs)
        if args.json:
            print(json.dumps({"file": name, "stage_split": splits[name],
                              "staged_briefs_per_second": {n: round(staged_rate(splits[name], n)) for n in counts}}),
                  flush=True)
        for by in SHARD_KEYS:
            for shards in counts:
                if shards == 1 and by != SHARD_KEYS[0]:
                    continue
                row = {"file": name, **sharded(records, briefs, shards, by)}
                shard_rows.append(row)
                if args.json:
                    print(json.dumps(row), flush=True)
    if args.json:
        return
    print("| stream | engine ms/brief | extraction | clustering | spikes | "
          + " | ".join(f"staged, {n} partition{'s' if n > 1 else ''}" for n in counts) + " |")
    print("|---|---|---|---|---|" + "---|" * len(counts))
    for name, split in splits.items():
        rates = " | ".join(f"{staged_rate(split, n):,.0f}/s" for n in counts)
        print(f"| {name} | {split['engine_ms']} | {split['extraction_ms']} | {split['clustering_ms']} "
              f"| {split['spikes_ms']} | {rates} |")
    print()
    print("| stream | shards | routed by | B3 after links / at arrival | stories | briefs per shard | briefs/s, a core each |")
    print("|---|---|---|---|---|---|---|")
    for row in shard_rows:
        print(f"| {row['file']} | {row['shards']} | {row['by'] if row['shards'] > 1 else '–'} "
              f"| {row['b3_after_links']:.3f} / {row['b3_at_arrival']:.3f} | {row['stories']} "
              f"| {', '.join(map(str, row['briefs_per_shard']))} | {row['briefs_per_second_a_core_each']:,} |")


if __name__ == "__main__":
    main()
