"""A worker's state over a long feed: RSS after 100k and after 1M briefs.

Runs, in this process and with in-memory state (what a worker with the
memory:// store keeps in its tables), what each new brief leaves behind in
both stages: its entry in the de-duplication table (``FirstSightings``, four
candidate partitions) and its id in the split stage's memory of forwarded ids
(``RecentIds``), then the story engine. Simulated days of briefs, one day
after another; the process's resident memory is sampled at checkpoints.
Windows, stories, processed-brief marks and alerts are dropped by event time,
de-duplication entries ``WIREWATCH_BRIEF_ID_RETENTION_SECONDS`` of fetch time
after they were recorded, and the forwarded ids beyond
``WIREWATCH_RECENT_BRIEF_IDS``, so once the first days have passed the figure
must stay flat. Settings come from the environment, as the worker's do.
Prints one JSON object.

    python bench/memory_bench.py [BRIEFS]       (default 1,000,000)
"""

from __future__ import annotations

import gc
import json
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from wirewatch.core.engine import create_engine
from wirewatch.core.pipeline import FirstSightings, RecentIds
from wirewatch.models import ClusterInput
from wirewatch.offline.simulation import Scenario, simulate
from wirewatch.settings import Settings

CHECKPOINTS = (10_000, 100_000, 250_000, 500_000, 1_000_000)
BRIEFS_PER_HOUR = 400
CANDIDATE_PARTITIONS = 4


def rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    settings = Settings()
    engine = create_engine(settings)
    first_seen: dict[str, list] = {}
    sightings = FirstSightings(first_seen, settings.brief_id_retention_seconds)
    forwarded = RecentIds(settings.recent_brief_ids)
    offsets = [0] * CANDIDATE_PARTITIONS
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    processed, day, samples = 0, 0, []
    started = time.perf_counter()
    while processed < total:
        scenario = Scenario(hours=24, background_rate_per_hour=BRIEFS_PER_HOUR, spikes=8, snapshot_every=86400, seed=day)
        for brief in sorted(simulate(scenario, start + timedelta(days=day)).briefs, key=lambda b: b.published_at):
            forwarded.add(brief.id)
            partition = int(brief.id, 16) % CANDIDATE_PARTITIONS
            sightings.sight(brief.id, partition=partition, offset=offsets[partition],
                            fetched_at=brief.published_at.timestamp())
            offsets[partition] += 1
            engine.process(ClusterInput(id=brief.id, text=brief.text, headline=brief.headline,
                                        published_at=brief.published_at))
            processed += 1
            if processed in CHECKPOINTS:
                gc.collect()
                state = engine.state
                samples.append({
                    "briefs": processed,
                    "rss_mib": round(rss_mib(), 1),
                    "stories": len(state.stories),
                    "processed_marks": len(state.processed),
                    "topic_histories": len(state.topic_history),
                    "first_seen_entries": len(first_seen),
                    "forwarded_ids": len(forwarded),
                    "seconds": round(time.perf_counter() - started),
                })
                print(json.dumps(samples[-1]), file=sys.stderr)
            if processed >= total:
                break
        day += 1
    by_count = {sample["briefs"]: sample["rss_mib"] for sample in samples}
    result = {"benchmark": "worker_state_memory", "briefs_per_hour": BRIEFS_PER_HOUR,
              "brief_id_retention_seconds": settings.brief_id_retention_seconds,
              "recent_brief_ids": settings.recent_brief_ids, "samples": samples}
    if 100_000 in by_count and 1_000_000 in by_count:
        result["rss_growth_100k_to_1m"] = round(by_count[1_000_000] / by_count[100_000] - 1, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
