"""Parser throughput on one core: pages/s and briefs/s over a simulated corpus of seed-shaped pages.

Prints one JSON object. The corpus comes from wirewatch's own simulator: a
page snapshot every 5 minutes, so most items repeat from one snapshot to the
next as they do on a live feed. Each round starts with the parser's caches
empty, as a freshly started worker would.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import datetime, timezone

from wirewatch.parser import clear_caches
from wirewatch.pipeline import RawRecord, split_record
from wirewatch.simulation import Scenario, simulate


def corpus(hours: float) -> list[bytes]:
    simulation = simulate(Scenario(hours=hours, seed=21), datetime(2026, 3, 2, tzinfo=timezone.utc))
    from wirewatch.models import Envelope

    return [
        Envelope(source="bench", fetched_at=s.fetched_at, body=s.page).model_dump_json().encode()
        for s in simulation.snapshots
    ]


def main() -> None:
    pages = corpus(float(sys.argv[1]) if len(sys.argv) > 1 else 48)
    now = datetime(2026, 3, 5, tzinfo=timezone.utc)
    rounds = []
    briefs = 0
    for _ in range(5):
        clear_caches()
        started = time.perf_counter()
        briefs = 0
        for value in pages:
            briefs += len(split_record(RawRecord(value=value), max_page_bytes=921600,
                                       dead_letter_max_original_bytes=65536, now=now).briefs)
        rounds.append(time.perf_counter() - started)
    best = min(rounds)
    print(json.dumps({
        "benchmark": "parser",
        "pages": len(pages),
        "briefs_per_page": round(briefs / len(pages), 2),
        "mean_page_bytes": round(statistics.mean(len(p) for p in pages)),
        "pages_per_second": round(len(pages) / best),
        "briefs_per_second": round(briefs / best),
        "rounds_seconds": [round(r, 3) for r in rounds],
    }))


if __name__ == "__main__":
    main()
