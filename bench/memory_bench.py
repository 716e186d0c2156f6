"""Memory of the story stage over a long feed: RSS after 100k and after 1M briefs.

Runs the worker's story engine in this process with in-memory state (what a
worker with the memory:// store keeps in its tables) over simulated days of
briefs, one day after another, and samples the process's resident memory at
checkpoints. Windows, stories, processed-brief marks and alerts are dropped
by event time, so once the first hours have passed the figure must stay flat.
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

from wirewatch.engine import create_engine
from wirewatch.models import ClusterInput
from wirewatch.settings import Settings
from wirewatch.simulation import Scenario, simulate

CHECKPOINTS = (10_000, 100_000, 250_000, 500_000, 1_000_000)
BRIEFS_PER_HOUR = 400


def rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    engine = create_engine(Settings())
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    processed, day, samples = 0, 0, []
    started = time.perf_counter()
    while processed < total:
        scenario = Scenario(hours=24, background_rate_per_hour=BRIEFS_PER_HOUR, spikes=8, snapshot_every=86400, seed=day)
        for brief in sorted(simulate(scenario, start + timedelta(days=day)).briefs, key=lambda b: b.published_at):
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
                    "seconds": round(time.perf_counter() - started),
                })
                print(json.dumps(samples[-1]), file=sys.stderr)
            if processed >= total:
                break
        day += 1
    by_count = {sample["briefs"]: sample["rss_mib"] for sample in samples}
    result = {"benchmark": "story_stage_memory", "briefs_per_hour": BRIEFS_PER_HOUR, "samples": samples}
    if 100_000 in by_count and 1_000_000 in by_count:
        result["rss_growth_100k_to_1m"] = round(by_count[1_000_000] / by_count[100_000] - 1, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
